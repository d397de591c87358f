"""``xlm train``, ``xlm evaluate`` and ``xlm predict``: thin wrappers over the training engine.

Defaults come from :class:`xlm_core.config.RunConfig` (one source of truth): an option not
given on the command line is not passed, so the run gets the RunConfig default.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from xlm_core import XLMError
from xlm_core.predict import add_predict_arguments


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
    p.add_argument("--dataset", required=True, help="head, hand, chest (or a dataset.yaml path)")
    p.add_argument("--root", help="dataset root folder (head, hand, chest; a dataset.yaml names its own)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--arch", help="unet, unetplusplus or deeplabv3 (default unetplusplus)")
    p.add_argument("--encoder", help="encoder name (default vgg19)")
    p.add_argument("--encoder-weights", dest="encoder_weights", help="imagenet, none or a weights file PATH")
    p.add_argument("--init", help="checkpoint of an earlier run to start from (transfer)")
    p.add_argument("--epochs", type=_positive_int, help="at most this many epochs (early stopping may end sooner)")
    p.add_argument("--patience", type=_positive_int, help="early stopping: epochs without improvement")
    p.add_argument("--train-size", dest="train_size", type=_positive_int, nargs=2, metavar=("H", "W"),
                   help="training grid, height and width in pixels")
    p.add_argument("--test-size", dest="test_size", type=_positive_int, nargs=2, metavar=("H", "W"),
                   help="evaluation size (default: the dataset's paper test size)")
    p.add_argument("--batch-size", dest="batch_size", type=_positive_int, help="images per optimiser step")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--lr-schedule", dest="lr_schedule", choices=["plateau", "cosine"],
                   help="plateau: x0.1 after patience//2 epochs without progress (the paper); "
                        "cosine: linear warm-up over the first epoch, then cosine decay to 0")
    p.add_argument("--loss", help="mse, bce, spatial_ce or awing")
    p.add_argument("--sigma", type=float, help="Gaussian sigma in heatmap pixels")
    p.add_argument("--folds", type=_positive_int, help="k-fold cross-validation over the training split")
    p.add_argument("--fold", type=int, help="held-out fold, 0-based (with --folds)")
    p.add_argument("--seed", type=int, help="seed of initialisation, augmentation and shuffling")
    p.add_argument("--val-fraction", dest="val_fraction", type=float,
                   help="early-stopping share carved out of the training part (default 0.1; 0: "
                        "none, every training image is fitted and early stopping watches their loss)")
    p.add_argument("--train-limit", dest="train_limit", type=_positive_int, help="use the first N training images")
    p.add_argument("--num-workers", dest="num_workers", type=int, help="data loader worker processes")
    p.add_argument("--checkpoint-every", dest="checkpoint_every_s", type=float,
                   help="write the resume state and the best weights at most every S seconds (default: every epoch)")
    p.add_argument("--precise-bn", dest="precise_bn", action="store_true", default=None,
                   help="re-estimate BatchNorm statistics on the fitted images for the chosen weights "
                        "before scoring (and in the MRE trace)")
    p.add_argument("--trace-mre", dest="trace_mre", action="store_true", default=None,
                   help="score the validation and test images after every epoch (history.csv); "
                        "recorded only, the checkpoint is still chosen by the validation loss")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train (auto: CUDA when present)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                   help="forward-pass precision (default auto: bf16 autocast on CUDA, and on CPUs "
                        "with AMX-BF16 for VGG encoders; fp32 elsewhere)")
    p.add_argument("--option", dest="options", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, repeatable (train=6, annotator=senior, exclusion=zhu, ...)")
    _show_defaults(p)
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


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append RunConfig's default to the help of every option that maps onto a field (options
    left out are not passed: the run gets that default)."""
    from dataclasses import MISSING, fields

    from xlm_core.config import RunConfig

    defaults = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}
    for action in parser._actions:
        if (action.dest in defaults and action.dest in _CONFIG_ARGS and defaults[action.dest] is not None
                and "default" not in (action.help or "")):
            value = defaults[action.dest]
            shown = " ".join(str(v) for v in value) if isinstance(value, tuple) else value
            action.help = f"{action.help or ''} (default: {shown})".strip()


_CONFIG_ARGS = ("dataset", "root", "out", "arch", "encoder", "encoder_weights", "init", "epochs", "patience",
                "train_size", "test_size", "batch_size", "lr", "lr_schedule", "loss", "sigma", "folds", "fold", "seed",
                "val_fraction", "train_limit", "num_workers", "checkpoint_every_s", "trace_mre", "precise_bn", "device", "precision")


def config_from_args(args: argparse.Namespace):
    """The RunConfig of ``xlm train``'s arguments (unset options keep RunConfig's defaults)."""
    from xlm_core.config import RunConfig

    values = {k: getattr(args, k) for k in _CONFIG_ARGS if getattr(args, k, None) is not None}
    is_descriptor = str(args.dataset).endswith((".yaml", ".yml"))
    if not is_descriptor and not args.root:
        raise XLMError(f"--root is needed for dataset {args.dataset!r} (the folder holding it); "
                       "a dataset.yaml names its own")
    values.setdefault("root", "")
    if (args.folds is None) != (args.fold is None):
        raise XLMError("cross-validation needs both --folds N and --fold K")
    if args.options:
        values["extra"] = dict(args.options)
    try:
        return RunConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise XLMError(f"bad run parameters: {exc}") from None


def run_train(args: argparse.Namespace) -> int:
    from xlm_core.training import train_and_evaluate

    train_and_evaluate(config_from_args(args))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from xlm_core.evaluation import evaluate_run, format_score

    score = evaluate_run(args.run_dir, args.protocol, root=args.root, device=args.device)
    print(json.dumps(score, indent=2, sort_keys=True) if args.json else format_score(score))
    return 0


