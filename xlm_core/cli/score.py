"""``xlm score PRED.csv GT.csv``: score predicted landmarks against ground truth (clean protocol).

Both files are landmark CSVs (``image_id,landmark,x,y``, original-image pixels, see
:mod:`xlm_core.landmark_csv`). The unit:

- ``--dataset head``: 0.1 mm per pixel, SDR 2 / 2.5 / 3 / 4 mm;
- ``--dataset hand``: 50 mm / wrist width, the wrist pair from ``--wrist`` (1-based, default
  Payer's 2,6), SDR 2 / 4 / 10 mm; the pair used is always printed;
- ``--dataset chest``: pixels, SDR 3 / 6 / 9 px;
- ``--mm-per-px X`` or ``--wrist A,B`` override the dataset's rule (either alone gives mm);
  ``--unit px`` scores in pixels whatever the dataset; ``--thresholds`` overrides the SDR
  thresholds (none given and no dataset: no SDR).

Images present in only one file are an error listing them, unless ``--intersect`` (then the
common images are scored and the dropped ones are reported).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.base import Scale
from xlm_core.landmark_csv import read_landmark_csv
from xlm_core.metrics import (
    DEFAULT_THRESHOLDS,
    PAYER_WRIST_PAIR,
    WRIST_MM,
    default_scale,
    evaluate_clean,
)


def _wrist(text: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--wrist expects two 1-based landmarks 'A,B', got {text!r}"
        ) from None
    if a < 1 or b < 1 or a == b:
        raise argparse.ArgumentTypeError(
            f"--wrist expects two different 1-based landmarks, got {text!r}"
        )
    return a - 1, b - 1


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "score",
        help="score predicted landmarks (CSV) against ground truth (CSV)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("pred", help="predicted landmarks CSV (image_id,landmark,x,y)")
    p.add_argument("gt", help="ground-truth landmarks CSV (image_id,landmark,x,y)")
    p.add_argument(
        "--dataset",
        choices=sorted(DEFAULT_THRESHOLDS),
        help="use this dataset's unit and thresholds",
    )
    p.add_argument("--mm-per-px", type=float, help="fixed pixel spacing in mm (unit mm)")
    p.add_argument(
        "--wrist", type=_wrist, help="hand wrist pair, 1-based 'A,B' (default 2,6, Payer et al.)"
    )
    p.add_argument("--thresholds", type=float, nargs="+", help="SDR thresholds in the output unit")
    p.add_argument("--unit", choices=["px", "mm"], help="force the output unit")
    p.add_argument(
        "--intersect", action="store_true", help="score only the images present in both files"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def resolve_scale(args: argparse.Namespace) -> Scale:
    """The :class:`Scale` chosen by ``--dataset`` / ``--mm-per-px`` / ``--wrist`` / ``--unit``."""
    if args.mm_per_px is not None and args.wrist is not None:
        raise XLMError("give either --mm-per-px or --wrist, not both")
    if args.mm_per_px is not None and not args.mm_per_px > 0:
        raise XLMError(f"--mm-per-px must be > 0, got {args.mm_per_px}")
    if args.unit == "px":
        if args.mm_per_px is not None or args.wrist is not None:
            raise XLMError("--unit px contradicts --mm-per-px / --wrist")
        return Scale(unit="px")
    if args.mm_per_px is not None:
        scale = Scale(unit="mm", mm_per_px=args.mm_per_px)
    elif args.wrist is not None:
        scale = Scale(unit="mm", wrist_pair=args.wrist, wrist_mm=WRIST_MM)
    elif args.dataset is not None:
        scale = default_scale(args.dataset, PAYER_WRIST_PAIR)
    else:
        scale = Scale(unit="px")
    if args.unit == "mm" and scale.unit != "mm":
        raise XLMError("--unit mm needs --mm-per-px, --wrist or --dataset head|hand")
    return scale


def _paired(pred: dict, gt: dict, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    only_pred = [i for i in pred if i not in gt]
    only_gt = [i for i in gt if i not in pred]
    if (only_pred or only_gt) and not args.intersect:
        parts = []
        if only_pred:
            parts.append(
                f"only in {args.pred}: {', '.join(only_pred[:20])}"
                + (" ..." if len(only_pred) > 20 else "")
            )
        if only_gt:
            parts.append(
                f"only in {args.gt}: {', '.join(only_gt[:20])}"
                + (" ..." if len(only_gt) > 20 else "")
            )
        raise XLMError(
            f"the two files list different images ({len(only_pred)} + {len(only_gt)} unmatched); "
            + "; ".join(parts)
            + " (use --intersect to score the common images)"
        )
    common = [i for i in gt if i in pred]
    if not common:
        raise XLMError(f"{args.pred} and {args.gt} have no image in common")
    return common, only_pred + only_gt


def run(args: argparse.Namespace) -> int:
    scale = resolve_scale(args)
    thresholds = args.thresholds
    if thresholds is None:
        thresholds = DEFAULT_THRESHOLDS[args.dataset] if args.dataset else ()
    pred = read_landmark_csv(args.pred)
    gt = read_landmark_csv(args.gt)
    ids, dropped = _paired(pred, gt, args)
    n_pred, n_gt = len(next(iter(pred.values()))), len(next(iter(gt.values())))
    if n_pred != n_gt:
        raise XLMError(f"{args.pred} has {n_pred} landmarks per image, {args.gt} has {n_gt}")
    if scale.wrist_pair is not None and max(scale.wrist_pair) >= n_gt:
        a, b = scale.wrist_pair
        raise XLMError(
            f"wrist pair {a + 1},{b + 1} (1-based) is beyond the {n_gt} landmarks of {args.gt}"
        )
    pred_px = np.stack([pred[i] for i in ids])
    gt_px = np.stack([gt[i] for i in ids])
    score = evaluate_clean(pred_px, gt_px, scale, thresholds)
    score["scale"] = scale.describe()
    score["wrist_pair"] = (
        [scale.wrist_pair[0] + 1, scale.wrist_pair[1] + 1] if scale.wrist_pair else None
    )
    score["dropped_images"] = dropped
    if args.json:
        print(json.dumps(score))
        return 0
    print(format_score(score))
    return 0


def format_score(score: dict) -> str:
    """Human-readable summary and per-landmark table of a SCORE dict."""
    unit = score["unit"]
    lines = [
        (
            f"protocol: {score['protocol']}   images: {score['n_images']}"
            f"   landmarks: {score['n_landmarks']}"
        ),
        f"unit: {score.get('scale', unit)}",
    ]
    if score.get("wrist_pair"):
        a, b = score["wrist_pair"]
        lines.append(f"wrist pair: landmarks {a} and {b} (1-based)")
    if score.get("dropped_images"):
        lines.append(f"not scored (in one file only): {', '.join(score['dropped_images'])}")
    lines.append(f"MRE: {score['mre']:.3f} +/- {score['mre_std']:.3f} {unit}")
    keys = list(score["sdr"])
    if keys:
        lines.append("SDR: " + "   ".join(f"<= {k} {unit}: {score['sdr'][k]:.2f} %" for k in keys))
    else:
        lines.append("SDR: not computed (no --thresholds, no --dataset)")
    lines.append("")
    header = f"{'landmark':>8}  {'MRE':>8}" + "".join(f"  {'SDR ' + k:>9}" for k in keys)
    lines.append(header)
    per_sdr = score.get("per_landmark_sdr", {})
    for k, mre in enumerate(score["per_landmark_mre"]):
        cells = "".join(f"  {per_sdr[t][k]:>8.2f}%" for t in keys)
        lines.append(f"{k + 1:>8}  {mre:>8.3f}{cells}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from xlm_core.cli import main

    sys.exit(main(["score", *sys.argv[1:]]))
