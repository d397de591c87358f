"""``xlm study run`` and ``xlm study status`` (thin: the logic is in :mod:`xlm_core.study`)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    study = subparsers.add_parser("study", help="run a study profile (demo, demo-paper-encoders, real, paper, ci, PATH.yaml)")
    sub = study.add_subparsers(dest="study_command", required=True)

    run = sub.add_parser(
        "run",
        help="expand a profile into runs and execute them (papermill), then the aggregation notebooks",
        description="Expand a study profile into its runs (a DAG: transfer stages start from earlier "
        "checkpoints), execute every run that is not done as notebooks/train_evaluate.py into "
        "RESULTS/<study>/runs/<id>/run.ipynb, then the aggregation notebooks. Finished runs are "
        "never trained again. Exit status 1 if any run failed. Ctrl-C stops it (one line, status 130); "
        "the same command started again resumes: finished runs are kept, a killed run continues from "
        "its last checkpoint.",
    )
    run.add_argument("profile", help="demo, demo-paper-encoders, real, paper, ci (studies/NAME.yaml), or a path to a profile .yaml")
    run.add_argument("--data-root", metavar="DIR",
                     help="real data: a folder holding each dataset the profile uses in its published layout (paper: head/, hand/, chest/; real: hamedan_university_dataset/, boostnet_labeldata/); overrides the profile's roots")
    run.add_argument("--executor", choices=("local", "dask"), default="local",
                     help="local: in this process (default); dask: a dask.distributed cluster")
    run.add_argument("--scheduler", metavar="ADDR",
                     help="address of a running Dask scheduler (e.g. tcp://host:8786); default: a LocalCluster")
    run.add_argument("--worker-timeout", type=float, default=120.0, metavar="SECONDS",
                     help="with --scheduler: how long to wait for a first Dask worker before giving "
                          "up (default: 120)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="parallel runs (local: threads; dask LocalCluster without GPUs: CPU workers); "
                          "default: the profile's execution.workers (auto: one per core and 3 GB)")
    run.add_argument("--keep-checkpoints", action="store_true",
                     help="keep every finished run's checkpoint.pt (the demo profile keeps only those a "
                          "later run or a book page needs: execution.keep_checkpoints: needed)")
    run.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results)")
    run.add_argument("--notebooks", metavar="DIR", help="notebook sources (default: the checkout's notebooks/)")
    run.add_argument("--no-aggregate", action="store_true", help="do not execute the aggregation notebooks")
    run.add_argument("--dry-run", action="store_true",
                     help="write data and study.json, check the plan against this machine (the "
                          "preflight: data, weights, GPU, disk) with its projected cost, list the runs "
                          "and their states, train nothing; exit status 2 when the preflight finds a problem")
    run.add_argument("--encoder-weights", action="append", default=[], metavar="ENCODER=PATH",
                     type=_encoder_weights,
                     help="weights of one encoder, over the profile's encoder_weights (repeatable; "
                          "PATH: a torchvision/lukemelas file, or imagenet, or none), e.g. "
                          "--encoder-weights vgg19=/weights/vgg19-dcbb9e9d.pth")
    run.add_argument("--no-preflight", action="store_true",
                     help="start the runs without checking data, weights, GPU and disk first")
    run.add_argument("--allow-cpu", action="store_true",
                     help="run a GPU-sized study (projected over 3 hours here) on a machine without CUDA")
    run.set_defaults(func=_run)

    status = sub.add_parser("status", help="list every run of a study and its state")
    status.add_argument("study", help="a study name (results/<name>) or a profile path")
    status.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results)")
    status.add_argument("--json", action="store_true", help="print the rows as JSON")
    status.set_defaults(func=_status)

    prune = sub.add_parser("prune", help="list (or, with --yes, delete) run folders the study no longer plans")
    prune.add_argument("study", help="a study name (results/<name>) or a profile path")
    prune.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results)")
    prune.add_argument("--yes", action="store_true", help="delete them (a folder whose run is held is kept)")
    prune.set_defaults(func=_prune)

    schema = sub.add_parser("schema", help="print the JSON Schema of study profiles (studies/profile.schema.json)",
                            description="Print the JSON Schema of a study profile: editors (VS Code's YAML "
                            "extension and other yaml-language-server clients) complete and check "
                            "studies/*.yaml with it. Regenerate the checked-in copy with "
                            "`xlm study schema > studies/profile.schema.json`; its reference page with "
                            "`xlm study schema --markdown > docs/profile.md`.")
    schema.add_argument("--markdown", action="store_true", help="print every key as a Markdown reference page")
    schema.set_defaults(func=_schema)


def _encoder_weights(text: str) -> tuple[str, str]:
    encoder, sep, value = text.partition("=")
    if not sep or not encoder or not value:
        raise argparse.ArgumentTypeError(f"expected ENCODER=PATH (or ENCODER=imagenet), got {text!r}")
    return encoder.strip(), value.strip()


def _run(args: argparse.Namespace) -> int:
    from xlm_core.study.runner import run_study

    result = run_study(
        args.profile,
        results=args.results,
        data_root=args.data_root,
        executor=args.executor,
        scheduler=args.scheduler,
        workers=args.workers,
        notebooks=args.notebooks,
        aggregate=not args.no_aggregate,
        dry_run=args.dry_run,
        keep_checkpoints=args.keep_checkpoints,
        worker_timeout_s=args.worker_timeout,
        allow_cpu=args.allow_cpu,
        encoder_weights=dict(args.encoder_weights),
        check=not args.no_preflight,
    )
    return result.exit_code


def _status(args: argparse.Namespace) -> int:
    from xlm_core.study.runner import format_status, study_status

    rows = study_status(args.study, args.results)
    print(json.dumps(rows, indent=2) if args.json else format_status(rows))
    return 0


def _schema(args: argparse.Namespace) -> int:
    import sys

    from xlm_core.study.profile import StudyProfile
    from xlm_core.validation import schema_output

    sys.stdout.write(schema_output(StudyProfile, "xlm study schema", args.markdown))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from xlm_core.study.runner import prune_orphans

    rows = prune_orphans(args.study, args.results, delete=args.yes)
    for row in rows:
        print(f"{row['state']:<8} {row['path']}")
    if not rows:
        print("no run folders outside the study's plan")
    elif not args.yes:
        print(f"{len(rows)} run folder(s) outside the study's plan (runs of changed parameters); "
              "`--yes` deletes them")
    return 0
