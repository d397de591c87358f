"""Dataset loaders: one call, ``load_dataset(name, root, **options) -> LandmarkSet``.

Every dataset is described by a descriptor (:mod:`xlm_core.datasets.descriptor`) and read by
one loader (:mod:`xlm_core.datasets.engine`). Names: ``"head"`` (ISBI 2015), ``"hand"``
(Digital Hand Atlas + Payer's CSV), ``"chest"`` (Shenzhen + Zhu's labels) resolve to the
packaged descriptors ``descriptors/{head,hand,chest}.yaml`` with the ``root`` given; ``"ceph"``
(Hamedan cephalograms, two readers) and ``"spine"`` (AASCE spine x-rays) likewise, ``root``
being the dataset folder or a data root holding it under the public repository's name; a path
to your own ``dataset.yaml`` (or its folder) loads that dataset, ``root`` defaulting to the
descriptor's folder. The older generic names ``"labelme"`` and ``"landmark_csv"`` (see
:mod:`xlm_core.datasets.generic`) and the older YAML form (``format: labelme|landmark_csv|
head|hand|chest``, optional ``root`` and loader options) keep working.

Options (all datasets): ``train`` (count or fraction of the sorted ids for the training
part; default the descriptor's split: the paper's, scaled to the number of usable images
when the root holds fewer or more than the paper's), ``verify_images`` (decode every image
now; default reads headers and decodes only files that look cut short, so a truncated file
is dropped either way), ``strict`` (raise
:class:`XLMError` listing every fatal problem instead of skipping those images). Per
descriptor: ``annotator="mean"|<source name>`` (several sources; head: senior, junior; ceph:
mollabashi, farhadifar),
``image_format="auto"|<alternative>`` (hand: jpg, mha), ``wrist_pair=(1, 5)`` 0-based or a
name (hand: ``"payer"``/``"zhu"``), ``exclusion=None|<name>`` (chest: ``"zhu"``).

Every loader returns float64 ``(x, y)`` landmarks in original-image pixels and records
every problem it met in ``LandmarkSet.problems`` (see :mod:`xlm_core.datasets.check`); the
unusable images it skipped are ``LandmarkSet.dropped``, ``[(image id, reason)]``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from xlm_core import XLMError
from xlm_core.datasets.base import LandmarkSet, Problem, Sample, Scale
from xlm_core.datasets.cache import PreprocessCache
from xlm_core.datasets.ceph import load_ceph
from xlm_core.datasets.check import CheckReport, dropped_images, report_from_set, usable
from xlm_core.datasets.chest import load_chest
from xlm_core.datasets.descriptor import (
    BUILTIN_NAMES,
    Descriptor,
    builtin_descriptor,
    descriptor_file,
    is_descriptor_path,
    parse_descriptor,
    read_descriptor,
    read_yaml,
)
from xlm_core.datasets.engine import load_described
from xlm_core.datasets.generic import load_labelme, load_landmark_csv
from xlm_core.datasets.hand import load_hand
from xlm_core.datasets.head import load_head
from xlm_core.datasets.spine import load_spine
from xlm_core.datasets.splits import carve_validation, grouped_kfold_split, kfold_split, ordered_split, sorted_ids

DATASET_NAMES = ("head", "hand", "chest")  # the paper's three
REAL_SET_NAMES = ("ceph", "spine")  # public sets large enough to train on (built-in descriptors)
GENERIC_NAMES = ("labelme", "landmark_csv")
LOADERS: dict[str, Callable] = {
    "head": load_head,
    "hand": load_hand,
    "chest": load_chest,
    "ceph": load_ceph,
    "spine": load_spine,
    "labelme": load_labelme,
    "landmark_csv": load_landmark_csv,
}

__all__ = [
    "BUILTIN_NAMES",
    "DATASET_NAMES",
    "GENERIC_NAMES",
    "REAL_SET_NAMES",
    "CheckReport",
    "Descriptor",
    "LandmarkSet",
    "PreprocessCache",
    "Problem",
    "Sample",
    "Scale",
    "builtin_descriptor",
    "carve_validation",
    "check_dataset",
    "dataset_fingerprint",
    "grouped_kfold_split",
    "kfold_split",
    "load_dataset",
    "loader_options",
    "read_descriptor",
    "usable",
]


def loader_options(name: str | os.PathLike) -> list[str]:
    """The options ``load_dataset(name, ...)`` accepts.

    Args:
        name: a built-in loader name or the path of a ``dataset.yaml`` (or of its folder).

    Returns:
        The option names, sorted (``train`` and ``strict`` included).

    Raises:
        XLMError: for an unknown dataset name or an invalid descriptor.
    """
    if str(name) not in LOADERS and is_descriptor_path(name):
        return _resolve(name, None, {})[1]
    loader = _loader(str(name))
    own = [p for p in inspect.signature(loader).parameters if p not in ("root", "log")]
    return sorted(own + ["train", "strict"])


def _loader(name: str) -> Callable:
    if name not in LOADERS:
        raise XLMError(f"unknown dataset {name!r}; choose one of {sorted(LOADERS)} or a dataset.yaml path")
    return LOADERS[name]


def _legacy_yaml(path: Path, spec: dict, root, options: dict) -> tuple[str, Path, dict]:
    """The older ``dataset.yaml`` form: ``format: <loader name>``, ``root``, loader options."""
    spec = dict(spec)
    name = str(spec.pop("format"))
    spec_root = spec.pop("root", None)
    if root is None or str(root) == "":
        root = path.parent / (spec_root if spec_root is not None else ".")
    return name, Path(root), {**spec, **options}


def _resolve(name, root, options: dict) -> tuple[str, list[str], Callable, object, dict]:
    """``(label, allowed options, loader(root, **options), root, options)`` for a name or descriptor."""
    if str(name) not in LOADERS and is_descriptor_path(name):
        path = descriptor_file(name)
        spec = read_yaml(path)
        if isinstance(spec, dict) and "format" in spec and "annotations" not in spec:
            name, root, options = _legacy_yaml(path, spec, root, options)
        else:
            desc = parse_descriptor(spec, where=str(path), folder=path.resolve().parent)
            allowed = sorted(desc.options() + ["verify_images", "train", "strict"])
            if root is None or str(root) == "":
                root = desc.folder
            return desc.name, allowed, partial(load_described, desc), root, options
    loader = _loader(str(name))
    if root is not None and str(root) == "":
        root = None
    return str(name), loader_options(str(name)), loader, root, options


def load_dataset(name: str | os.PathLike, root: str | os.PathLike | None, **options) -> LandmarkSet:
    """Load a dataset into a :class:`LandmarkSet` (see the module docstring for options).

    Args:
        name: ``"head"``, ``"hand"``, ``"chest"`` (built-in descriptors), ``"labelme"``,
            ``"landmark_csv"``, or the path of a ``dataset.yaml`` (or of its folder).
        root: the dataset root; None or ``""``: a descriptor's own folder.
        **options: the loader's options (:func:`loader_options`), plus ``train`` (the number or
            fraction of training images, overriding the dataset's split) and ``strict`` (True:
            any problem that makes an image unusable is an error).

    Returns:
        The :class:`LandmarkSet`: samples in natural id order, split, with the problems found and
        the images dropped.

    Raises:
        XLMError: for a wrong root (naming the expected path), a bad descriptor key, an unknown
            option, too few usable images for the split, or (``strict=True``) any problem that
            makes an image unusable.
    """
    label, allowed, loader, root, options = _resolve(name, root, dict(options))
    if root is None:
        raise XLMError(f"dataset {label!r}: no root folder given")
    train = options.pop("train", None)
    strict = bool(options.pop("strict", False))
    allowed_here = set(allowed) - {"train", "strict"}
    unknown = set(options) - allowed_here
    if unknown:
        raise XLMError(f"dataset {label!r}: unknown option(s) {sorted(unknown)}; allowed: {sorted(allowed_here)}")
    samples, log, settings = loader(root, **options)

    if strict and any(p.fatal for p in log.problems):
        listed = "\n".join(f"  {p.file}: {p.problem}" for p in log.problems if p.fatal)
        raise XLMError(f"dataset {label!r} at {root} has problems that make images unusable:\n{listed}")
    samples = _natural(samples)
    dropped = dropped_images(log.problems, [s.id for s in samples])
    explicit = settings.get("split_ids")
    if train is None and explicit is not None:
        train_ids, test_ids = list(explicit[0]), list(explicit[1])
    else:
        paper_train, paper_total = settings["paper_split"]
        chosen = train if train is not None else settings.get("split_train")
        try:
            train_ids, test_ids = ordered_split([s.id for s in samples], chosen, paper_train, paper_total)
        except XLMError as exc:  # too few images: say which ones were unusable
            if not dropped:
                raise
            raise XLMError(f"dataset {label!r} at {root}: {exc}; {_dropped_text(dropped)}") from None
    return LandmarkSet(
        name=label,
        root=Path(settings.get("root", root)),  # a descriptor's source_folder may lead inside ROOT
        samples=samples,
        landmark_names=settings["landmark_names"],
        scale=settings["scale"],
        thresholds=tuple(settings["thresholds"]),
        train_size=tuple(settings["train_size"]),
        test_size=tuple(settings["test_size"]),
        train_ids=train_ids,
        test_ids=test_ids,
        problems=list(log.problems),
        synthetic=bool(settings["synthetic"]),
        options={**settings["options"], "train": train},
        annotator_disagreement=settings.get("annotator_disagreement"),
        dropped=dropped,
        images_found=settings.get("images_found"),
        group_by=settings.get("group_by"),
    )


def check_dataset(name: str, root: str | os.PathLike, **options) -> CheckReport:
    """Validate a dataset root, decoding every image; lists every problem found.

    Args:
        name: a dataset name or descriptor path, as for :func:`load_dataset`.
        root: the dataset root.
        **options: loader options (``verify_images`` and ``strict`` are set here).

    Returns:
        :class:`CheckReport`.

    Raises:
        XLMError: only when the root itself is wrong (missing folder or file) or an option is
            unknown.
    """
    options = {**options, "verify_images": True, "strict": False}
    return report_from_set(load_dataset(name, root, **options))



def _dropped_text(dropped: list[tuple[str, str]], shown: int = 5) -> str:
    """``"3 unusable images skipped: id (reason); ..."`` for an error message."""
    items = "; ".join(f"{i} ({reason})" for i, reason in dropped[:shown])
    more = f"; and {len(dropped) - shown} more" if len(dropped) > shown else ""
    return f"{len(dropped)} unusable images skipped: {items}{more}"


def _natural(samples: list[Sample]) -> list[Sample]:
    order = sorted_ids([s.id for s in samples])
    index = {s.id: s for s in samples}
    return [index[i] for i in order]


def dataset_fingerprint(lset: LandmarkSet, cache: PreprocessCache | None = None) -> str:
    """Content hash of a loaded set: image bytes, ground-truth landmarks, options and split.

    Changes when an image, an annotation, the annotator choice or the split changes; does not
    change when the root folder moves.

    Args:
        lset: the loaded dataset.
        cache: the cache whose image fingerprints are reused; None: a default one.

    Returns:
        16 hexadecimal characters (a truncated SHA-256).
    """
    cache = cache or PreprocessCache()
    digest = hashlib.sha256()
    digest.update(cache.fingerprint([s.image for s in lset.samples]).encode())
    for sample in lset.samples:
        digest.update(sample.id.encode() + b"\0")
        digest.update(sample.landmarks.astype("<f8").tobytes())
    meta = {"name": lset.name, "options": lset.options, "train": lset.train_ids, "test": lset.test_ids}
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
