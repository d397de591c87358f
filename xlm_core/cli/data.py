"""``xlm data synth`` (phantom datasets), ``xlm data check`` (validate a dataset root),
``xlm data fetch`` (the public real sets, cloned at their pinned commits) and ``xlm data schema``
(the JSON Schema of a ``dataset.yaml``)."""

from __future__ import annotations

import argparse
import json
import re

from xlm_core import XLMError


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must look like WxH (e.g. 194x240), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _wrist(text: str):
    if text.lower() in ("payer", "zhu"):
        return text.lower()
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError("wrist pair must be 'A,B' (1-based), 'payer' or 'zhu'")
    try:
        a, b = (int(p) - 1 for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError("wrist pair must be two 1-based integers 'A,B'") from None
    return (a, b)


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="make or validate datasets")
    sub = data.add_subparsers(dest="data_command", required=True)

    synth = sub.add_parser(
        "synth",
        help="write a phantom dataset in a real dataset's on-disk layout",
        description="Draw phantom x-rays with landmarks, in the layout the real loader reads.",
    )
    synth.add_argument("anatomy", choices=["head", "hand", "chest"], help="which dataset's layout and anatomy")
    synth.add_argument("out", help="output folder (new, empty, or an earlier phantom set)")
    synth.add_argument("--n", type=int, default=20, help="number of images (default 20)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    synth.add_argument("--size", type=_size, default=None, metavar="WxH",
                       help="image size (default head 194x240, hand 184x256, chest 256x256)")
    synth.add_argument("--format", choices=["native", "labelme"], default="native",
                       help="native: the real dataset layout; labelme: images/ID.png + ID.json "
                       "and a dataset.yaml descriptor")
    synth.add_argument("--annotators", type=int, default=1, metavar="K",
                       help="labelme: K readers (2..4) in reader_a/, reader_b/, ...; reader a = the drawn "
                       "landmarks, the others = those plus small offsets (default 1: images/ID.json)")
    synth.set_defaults(func=_synth)

    check = sub.add_parser(
        "check",
        help="validate a dataset root and list every problem",
        description="Decode every image and parse every annotation with the loaders' own rules; "
        "print the image files found, the usable ones, the unusable ones (ids and reasons, the "
        "images every loader and `xlm train` skip) and every problem; for head, hand, chest, ceph "
        "and spine roots that are missing, empty or incomplete, where the data are published and "
        "how to lay them out (ceph, spine: ROOT may be a folder holding the public repositories' "
        "folders hamedan_university_dataset/, boostnet_labeldata/). Exit status 1 when an image "
        "is unusable or a split is empty.",
    )
    check.add_argument("dataset", metavar="DATASET",
                       help="head, hand, chest, ceph, spine, labelme, landmark_csv, or PATH/dataset.yaml")
    check.add_argument("root", nargs="?", default=None,
                       help="dataset root (a dataset.yaml's default: its own folder)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--annotator", help="ground truth: mean or one source (head: senior, junior; "
                       "ceph: mollabashi, farhadifar)")
    check.add_argument("--image-format", choices=["auto", "jpg", "mha"], help="hand images")
    check.add_argument("--wrist", type=_wrist, help="hand wrist pair: 'A,B' 1-based, 'payer', 'zhu'")
    check.add_argument("--exclusion", help="chest: 'zhu' drops Zhu et al.'s 9 ids")
    check.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                       help="any dataset option, repeatable (VALUE read as YAML)")
    check.set_defaults(func=_check)

    fetch = sub.add_parser(
        "fetch",
        help="clone a public real set at its pinned commit into a data root",
        description="Clone the public repository of a real set at the commit its built-in "
        "descriptor pins, only the set's folder (sparse checkout, blobs on demand), into "
        "DIR/<the repository's folder name>: the layout `xlm study run real --data-root DIR` "
        "reads. Prints the set's terms first and `xlm data check`'s summary at the end. A second "
        "call finds the folder and fetches nothing. Exit status 2 when git is missing, the "
        "repository cannot be reached, or it lacks the commit or the folder; 1 when the fetched "
        "set has an empty split.",
    )
    fetch.add_argument("dataset", metavar="DATASET",
                       help="ceph (Hamedan cephalograms), spine (AASCE spine x-rays), or real (both)")
    fetch.add_argument("root", metavar="DIR", help="the data root (created if missing)")
    fetch.add_argument("--source", metavar="URL",
                       help="another source of the repository: a mirror or a local clone "
                       "(file://...); default: the descriptor's")
    fetch.add_argument("--commit", metavar="SHA",
                       help="the commit to check out from --source (the full id); default: the "
                       "descriptor's pinned commit")
    fetch.set_defaults(func=_fetch)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a dataset.yaml (studies/dataset.schema.json)",
        description="Print the JSON Schema of a dataset descriptor (dataset.yaml): editors (VS Code's "
        "YAML extension and other yaml-language-server clients) complete and check a dataset.yaml whose "
        "first line names it: `# yaml-language-server: $schema=PATH/dataset.schema.json`. Regenerate "
        "the checked-in copies with `xlm data schema | tee studies/dataset.schema.json "
        "> xlm_core/datasets/dataset.schema.json`.",
    )
    schema.add_argument("--markdown", action="store_true",
                        help="print every key as a Markdown reference page (docs/dataset.md)")
    schema.set_defaults(func=_schema)


def _synth(args) -> int:
    from xlm_core.datasets.synth import write_phantoms

    if args.n < 1:
        raise XLMError(f"--n must be at least 1, got {args.n}")
    out = write_phantoms(args.anatomy, args.out, n=args.n, seed=args.seed, size_wh=args.size,
                         fmt=args.format, annotators=args.annotators)
    print(f"wrote {args.n} {args.anatomy} phantom images ({args.format} layout, seed {args.seed}) to {out}")
    if args.format == "labelme":
        print(f"descriptor: {out / 'dataset.yaml'} (xlm data check {out / 'dataset.yaml'})")
    return 0


def _options(pairs: list[str]) -> dict:
    import yaml

    options = {}
    for text in pairs:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise XLMError(f"--option expects KEY=VALUE, got {text!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            options[key.strip()] = value
    return options


def _check(args) -> int:
    from xlm_core.datasets import LOADERS, check_dataset
    from xlm_core.datasets.descriptor import is_descriptor_path
    from xlm_core.datasets.sources import where_to_get

    described = args.dataset not in LOADERS and is_descriptor_path(args.dataset)
    if not described and args.dataset not in LOADERS:
        raise XLMError(f"unknown dataset {args.dataset!r}; choose one of {sorted(LOADERS)} or a "
                       "PATH/dataset.yaml")
    if args.root is None and not described:
        raise XLMError(f"dataset {args.dataset!r} needs a ROOT folder")
    options = _options(args.options)
    if args.annotator:
        options["annotator"] = args.annotator
    if args.image_format:
        options["image_format"] = args.image_format
    if args.wrist is not None:
        options["wrist_pair"] = args.wrist
    if args.exclusion:
        options["exclusion"] = args.exclusion
    for key, flag, allowed in (("annotator", "--annotator", ("head", "ceph")),
                               ("image_format", "--image-format", ("hand",)),
                               ("wrist_pair", "--wrist", ("hand",)), ("exclusion", "--exclusion", ("chest",))):
        if key in options and args.dataset not in allowed and not described:
            raise XLMError(f"{flag} applies to the {' and '.join(allowed)} dataset{'s' * (len(allowed) > 1)} only")
    try:
        report = check_dataset(args.dataset, args.root, **options)
    except XLMError as exc:
        hint = where_to_get(args.dataset) if not described else None
        if hint is None:
            raise
        raise XLMError(f"{exc}\n{hint}") from None
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.as_text())
    return 0 if report.ok else 1


def _fetch(args) -> int:
    import sys

    from xlm_core.datasets import check_dataset
    from xlm_core.datasets.fetch import ALL_NAME, FetchError, fetch_dataset, fetchable, pin
    from xlm_core.datasets.sources import SOURCES

    try:
        names = list(fetchable()) if args.dataset == ALL_NAME else [args.dataset]
        if len(names) > 1 and (args.source or args.commit):
            raise FetchError(f"--source and --commit name one repository: fetch {' and '.join(names)} "
                             "one at a time")
        pins = [pin(name, args.source, args.commit) for name in names]
        folders = []
        for p in pins:
            print(f"{p.name}: {SOURCES[p.name].title}; terms: {SOURCES[p.name].terms}")
            folders.append(fetch_dataset(p, args.root)[0])
    except FetchError as exc:
        print(f"xlm: error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for p, folder in zip(pins, folders, strict=True):
        report = check_dataset(p.name, folder)
        summary = report.as_text().splitlines()[0]
        print(f"xlm data check: {summary}")
        for text in report.split_problems:
            print(f"  ERROR split: {text}")
            status = 1
    return status


def _schema(args) -> int:
    import sys

    from xlm_core.datasets.descriptor import DescriptorSpec
    from xlm_core.validation import schema_output

    sys.stdout.write(schema_output(DescriptorSpec, "xlm data schema", args.markdown))
    return 0
