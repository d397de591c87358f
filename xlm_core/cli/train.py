"""``xlm train``, ``xlm evaluate`` and ``xlm predict``: thin wrappers over the training engine.

``xlm train``'s run options are RunConfig's fields (:func:`add_config_arguments` reads them:
flag, help, type, choices, default): an option not given on the command line is not
passed, so the run gets the RunConfig default.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from xlm_core import XLMError
from xlm_core.predict import add_predict_arguments


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` for a dataset option; VALUE parsed as YAML (``6``, ``0.8``, ``[1, 5]``, ``senior``)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train and evaluate one run (resumes an interrupted run in the same --out)",
        description="Train a landmark model on one dataset and evaluate it; writes RUN_DIR/"
        "{checkpoint.pt, history.csv, predictions.csv, metrics.json}. Started again with the same "
        "arguments, a killed run continues from its last epoch and a finished one returns at once.",
        epilog="Progress within an epoch (steps, loss, ETA) shows on a terminal; XLM_PROGRESS=1 "
        "forces it on (e.g. under nohup or in a log file), XLM_PROGRESS=0 off.",
    )
    add_config_arguments(p)
    p.add_argument("--option", dest="options", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, repeatable (train=6, annotator=senior, exclusion=zhu, ...)")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("evaluate", help="recompute a run's test scores from its checkpoint")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a finished run's folder (holds checkpoint.pt)")
    e.add_argument("--protocol", choices=["clean", "zhu"], default="clean",
                   help="clean: sub-pixel, original image (default); zhu: Zhu et al.'s evaluator")
    e.add_argument("--root", help="dataset root, if it moved since training")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to run the model (default: auto, CUDA when present)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=run_evaluate)

    q = subparsers.add_parser("predict", help="landmarks for new images (files or folders): landmarks.csv, "
                              ".json, overlays; exit status 1 when an image could not be read")
    add_predict_arguments(q)  # sets func=xlm_core.predict.predict_command


_REQUIRED = ("dataset", "out")  # --root: required for the named datasets only (config_from_args)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field, made from its JSON Schema (:func:`xlm_core.config.run_schema`:
    type, choices, default, description) and its :class:`~xlm_core.config.Flag`. An option not
    given is not passed: the run gets RunConfig's default. The values are checked by RunConfig
    (SettingError naming the field)."""
    from xlm_core.config import Flag, marker, run_schema

    for name, prop in run_schema()["properties"].items():
        flag = marker(name, Flag) or Flag("--" + name.replace("_", "-"))
        if flag.name is None:
            continue
        value = next(p for p in prop.get("anyOf", [prop]) if p.get("type") != "null")
        help_text, default = prop["description"], prop.get("default")
        if default is not None:
            help_text += f" (default: {' '.join(map(str, default)) if isinstance(default, list) else default})"
        kwargs: dict[str, Any] = {"dest": name, "help": help_text, "required": name in _REQUIRED}
        if value["type"] == "boolean":
            kwargs.update(action="store_true", default=None)
        else:
            kwargs.update(type={"integer": int, "number": float, "array": int}.get(value["type"], str),
                          choices=flag.choices or value.get("enum"))
        if value["type"] == "array":
            kwargs.update(nargs=2, metavar=("H", "W"))
        parser.add_argument(flag.name, **kwargs)


def config_from_args(args: argparse.Namespace):
    """The RunConfig of ``xlm train``'s arguments (unset options keep RunConfig's defaults)."""
    from xlm_core.config import RunConfig, field_names

    values = {k: getattr(args, k) for k in field_names() if getattr(args, k, None) is not None}
    is_descriptor = str(args.dataset).endswith((".yaml", ".yml"))
    if not is_descriptor and not args.root:
        raise XLMError(f"--root is needed for dataset {args.dataset!r} (the folder holding it); "
                       "a dataset.yaml names its own")
    values.setdefault("root", "")
    if args.options:
        values["extra"] = dict(args.options)
    return RunConfig.from_dict(values)


def run_train(args: argparse.Namespace) -> int:
    from xlm_core.training import train_and_evaluate

    train_and_evaluate(config_from_args(args))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from xlm_core.evaluation import evaluate_run, format_score

    score = evaluate_run(args.run_dir, args.protocol, root=args.root, device=args.device)
    print(json.dumps(score, indent=2, sort_keys=True) if args.json else format_score(score))
    return 0


