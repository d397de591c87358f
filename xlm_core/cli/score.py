"""``xlm score PRED.csv GT.csv``: score predicted landmarks against ground truth.

Both files are landmark CSVs (``image_id,landmark,x,y``, original-image pixels, see
:mod:`xlm_core.landmark_csv`). Two protocols (``docs/protocols.md``):

``--protocol clean`` (the default): errors in the original image, in the unit of

- ``--dataset head``: 0.1 mm per pixel, SDR 2 / 2.5 / 3 / 4 mm;
- ``--dataset hand``: 50 mm / wrist width, the wrist pair from ``--wrist`` (1-based, default
  Payer's 2,6), SDR 2 / 4 / 10 mm; the pair used is always printed;
- ``--dataset chest``: pixels, SDR 3 / 6 / 9 px;
- ``--mm-per-px X`` or ``--wrist A,B`` override the dataset's rule (either alone gives mm);
  ``--unit px`` scores in pixels whatever the dataset.

``--protocol zhu``: Zhu et al. 2021's evaluator (the one behind the paper's Table 3), exactly:
prediction and truth mapped to the dataset's resized grid by ``round(p * new / old)`` per axis
(head 416x512, hand 368x512, chest 512x512, W x H; ``--grid WxH`` to change), each axis scaled
before squaring (head 0.1 mm x H / 512 = 0.46875 mm per grid pixel, ``--mm-per-px`` for another
spacing; hand 50 mm / grid distance of the wrist pair, default Zhu's 1,5; chest grid pixels).
It needs ``--dataset`` and the original image sizes: ``--image-size WxH`` (all images),
``--images DIR`` (each image's size read from DIR, found by its id as file name) or
``--sizes CSV`` (``image_id,width,height``).

SDR thresholds: ``--thresholds``, else the dataset's, else a stated default per unit (mm:
2 / 2.5 / 3 / 4, px: 3 / 6 / 9). ``--sdr-strict`` counts ``d < t`` (Payer et al.) instead of
``d <= t``; the rule used is printed with every SDR.

Images present in only one file are an error listing them, unless ``--intersect`` (then the
common images are scored and the dropped ones are reported).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.base import Scale
from xlm_core.landmark_csv import read_image_sizes, read_landmark_csv
from xlm_core.metrics import (
    DEFAULT_THRESHOLDS,
    HEAD_MM_PER_PX,
    PAYER_WRIST_PAIR,
    SDR_TIE_RULES,
    UNIT_THRESHOLDS,
    WRIST_MM,
    ZHU_GRID_HW,
    ZHU_WRIST_PAIR,
    default_scale,
    evaluate_clean,
    evaluate_zhu,
    zhu_to_grid,
)

PROTOCOLS = ("clean", "zhu")


def _tie_rules_text() -> str:
    lines = ["SDR tie rules (an error exactly equal to the threshold):"]
    for who, rule in SDR_TIE_RULES.items():
        lines += textwrap.wrap(f"{who}: {rule}", width=88, initial_indent="  ",
                               subsequent_indent="      ")
    lines += [
        "--protocol clean uses this project's rule, --protocol zhu Zhu et al.'s;",
        "--sdr-strict switches either to Payer et al.'s d < t.",
    ]
    return "\n".join(lines)


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


def parse_wh(text: str) -> tuple[int, int]:
    """``"1935x2400"`` (WIDTHxHEIGHT, pixels) -> ``(H, W)`` = ``(2400, 1935)``.

    Args:
        text: ``WxH`` with positive integers.

    Returns:
        ``(H, W)``, the project's size order.
    """
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT in pixels such as 1935x2400, got {text!r}"
        ) from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"width and height must be > 0, got {text!r}")
    return h, w


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "score",
        help="score predicted landmarks (CSV) against ground truth (CSV)",
        description=__doc__.replace(":mod:", "").replace("``", "").replace("`", ""),
        epilog=_tie_rules_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pred", help="predicted landmarks CSV (image_id,landmark,x,y)")
    p.add_argument("gt", help="ground-truth landmarks CSV (image_id,landmark,x,y)")
    p.add_argument(
        "--dataset",
        choices=sorted(DEFAULT_THRESHOLDS),
        help="use this dataset's unit and thresholds (required by --protocol zhu)",
    )
    p.add_argument(
        "--protocol", choices=PROTOCOLS, default="clean",
        help="clean (default): errors in the original image; zhu: Zhu et al.'s evaluator",
    )
    p.add_argument(
        "--mm-per-px", type=float,
        help="fixed pixel spacing in mm (unit mm); zhu: the head's original spacing (default 0.1)",
    )
    p.add_argument(
        "--wrist", type=_wrist,
        help="hand wrist pair, 1-based 'A,B' (default: clean 2,6 Payer et al.; zhu 1,5 Zhu et al.)",
    )
    p.add_argument(
        "--thresholds", type=float, nargs="+",
        help="SDR thresholds in the output unit (default: the dataset's, else mm 2 2.5 3 4, px 3 6 9)",
    )
    p.add_argument("--sdr-strict", action="store_true",
                   help="SDR counts d < t (Payer et al.) instead of d <= t")
    p.add_argument("--unit", choices=["px", "mm"], help="force the output unit (clean only)")
    sizes = p.add_mutually_exclusive_group()
    sizes.add_argument("--image-size", type=parse_wh, metavar="WxH",
                       help="zhu: the original size of every image, e.g. 1935x2400")
    sizes.add_argument("--images", metavar="DIR",
                       help="zhu: read each image's size from DIR (file name = image id, any depth)")
    sizes.add_argument("--sizes", metavar="CSV", help="zhu: image sizes CSV (image_id,width,height)")
    p.add_argument("--grid", type=parse_wh, metavar="WxH",
                   help="zhu: the resized grid (default the dataset's: head 416x512, hand 368x512, "
                        "chest 512x512)")
    p.add_argument(
        "--intersect", action="store_true", help="score only the images present in both files"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def resolve_scale(args: argparse.Namespace) -> Scale:
    """The clean protocol's :class:`Scale` chosen by ``--dataset`` / ``--mm-per-px`` /
    ``--wrist`` / ``--unit``.

    Args:
        args: the parsed ``xlm score`` arguments.

    Returns:
        The scale to convert original-pixel errors.
    """
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


def resolve_thresholds(args: argparse.Namespace, unit: str) -> tuple[list[float], str]:
    """SDR thresholds and where they come from: ``--thresholds``, the dataset's, or the
    stated default of the unit (:data:`xlm_core.metrics.UNIT_THRESHOLDS`).

    Args:
        args: the parsed ``xlm score`` arguments.
        unit: the output unit (``mm`` or ``px``).

    Returns:
        ``(thresholds, source)``.
    """
    if args.thresholds is not None:
        if not all(t > 0 for t in args.thresholds):
            raise XLMError(f"--thresholds must be > 0, got {args.thresholds}")
        return [float(t) for t in args.thresholds], "--thresholds"
    if args.dataset is not None:
        return list(DEFAULT_THRESHOLDS[args.dataset]), f"dataset {args.dataset}"
    return list(UNIT_THRESHOLDS[unit]), f"default for unit {unit}"


def _check_zhu_args(args: argparse.Namespace) -> None:
    if args.dataset is None:
        raise XLMError("--protocol zhu defines its unit per dataset: give --dataset head, hand or chest")
    if args.unit is not None:
        raise XLMError("--unit applies to --protocol clean only (zhu's unit is the dataset's)")
    if args.mm_per_px is not None:
        if args.dataset != "head":
            raise XLMError("--mm-per-px with --protocol zhu sets the head's spacing; "
                           f"the {args.dataset} unit does not use it")
        if not args.mm_per_px > 0:
            raise XLMError(f"--mm-per-px must be > 0, got {args.mm_per_px}")
    if args.wrist is not None and args.dataset != "hand":
        raise XLMError("--wrist applies to --dataset hand only")
    if args.image_size is None and args.images is None and args.sizes is None:
        raise XLMError("--protocol zhu maps points to the resized grid, so it needs the original "
                       "image sizes: give --image-size WxH, --images DIR or --sizes CSV")


def images_by_id(folder: str | Path, ids: list[str]) -> dict[str, Path]:
    """The image file of each id under ``folder`` (any depth; file name without extension = id).

    Args:
        folder: the images' folder.
        ids: the image ids needed.

    Returns:
        ``{id: path}`` for every id.

    Raises:
        XLMError: naming the folder when it is missing, or listing the ids without an image
            or with several.
    """
    from xlm_core.imageio import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise XLMError(f"{folder}: --images must be a folder of images")
    wanted = set(ids)
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        name = path.name
        ext = next((e for e in IMAGE_EXTENSIONS if name.lower().endswith(e)), None)
        if ext is None or not path.is_file():
            continue
        stem = name[: -len(ext)]
        if stem in wanted:
            found.setdefault(stem, []).append(path)
    missing = [i for i in ids if i not in found]
    if missing:
        raise XLMError(f"{folder}: no image file for {len(missing)} image id(s): "
                       f"{', '.join(missing[:20])}" + (" ..." if len(missing) > 20 else ""))
    several = {i: p for i, p in found.items() if len(p) > 1}
    if several:
        i, paths = next(iter(several.items()))
        raise XLMError(f"{folder}: {len(several)} image id(s) match several files, e.g. {i!r}: "
                       + ", ".join(str(p) for p in paths[:3]))
    return {i: found[i][0] for i in ids}


def image_sizes(args: argparse.Namespace, ids: list[str]) -> tuple[list[tuple[int, int]], str]:
    """Each scored image's original ``(H, W)`` from ``--image-size``, ``--images`` or ``--sizes``.

    Args:
        args: the parsed ``xlm score`` arguments.
        ids: the scored image ids.

    Returns:
        ``(sizes, source)``: one ``(H, W)`` per id and a sentence naming the source.
    """
    if args.image_size is not None:
        h, w = args.image_size
        return [(h, w)] * len(ids), f"--image-size {w}x{h} (every image)"
    if args.sizes is not None:
        table = read_image_sizes(args.sizes)
        missing = [i for i in ids if i not in table]
        if missing:
            raise XLMError(f"{args.sizes}: no size for {len(missing)} scored image(s): "
                           f"{', '.join(missing[:20])}" + (" ..." if len(missing) > 20 else ""))
        return [table[i] for i in ids], f"--sizes {args.sizes}"
    from xlm_core.imageio import read_image_size

    files = images_by_id(args.images, ids)
    sizes = []
    for i in ids:
        w, h = read_image_size(files[i])
        sizes.append((h, w))
    return sizes, f"--images {args.images} (read from each image)"


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


def score_zhu(args: argparse.Namespace, ids: list[str], pred_px: np.ndarray,
              gt_px: np.ndarray) -> dict[str, Any]:
    """The zhu protocol's SCORE of ``xlm score`` (sizes, grid and unit resolved from ``args``).

    Args:
        args: the parsed ``xlm score`` arguments.
        ids: the scored image ids.
        pred_px: ``(N, L, 2)`` predictions in original pixels.
        gt_px: ``(N, L, 2)`` ground truth in original pixels.

    Returns:
        The SCORE dict with ``scale``, ``grid`` ([W, H]), ``image_sizes`` and ``wrist_pair``.
    """
    dataset = args.dataset
    grid_hw = args.grid or ZHU_GRID_HW[dataset]
    hws, source = image_sizes(args, ids)
    pred_grid = []
    for i, p, hw in zip(ids, pred_px, hws):
        try:
            pred_grid.append(zhu_to_grid(p, hw, grid_hw, dataset, truth=False))
        except XLMError as exc:
            raise XLMError(f"{args.pred}: image {i!r}: {exc}") from None
    for i, g, hw in zip(ids, gt_px, hws):  # name the image of a truth far outside its grid
        try:
            zhu_to_grid(g, hw, grid_hw, dataset)
        except XLMError as exc:
            raise XLMError(f"{args.gt}: image {i!r}: {exc}") from None
    wrist = args.wrist or ZHU_WRIST_PAIR
    mm_per_px = args.mm_per_px or HEAD_MM_PER_PX
    thresholds, thr_source = resolve_thresholds(args, "px" if dataset == "chest" else "mm")
    score = evaluate_zhu(np.stack(pred_grid), gt_px, hws, grid_hw, dataset, thresholds,
                         wrist_pair=wrist, mm_per_px=mm_per_px, strict=args.sdr_strict)
    gh, gw = grid_hw
    if dataset == "head":
        factors = sorted({mm_per_px * h / gh for h, _ in hws})
        shown = ", ".join(f"{f:g}" for f in factors[:3]) + (" ..." if len(factors) > 3 else "")
        scale = f"mm: {mm_per_px:g} mm/px x H / {gh} = {shown} mm per grid pixel, both axes"
    elif dataset == "hand":
        scale = (f"mm: {WRIST_MM:g} mm / grid distance between landmarks {wrist[0] + 1} and "
                 f"{wrist[1] + 1} (1-based)")
    else:
        scale = "px: grid pixels"
    score.update(scale=scale, grid=[int(gw), int(gh)], image_sizes=source,
                 wrist_pair=[wrist[0] + 1, wrist[1] + 1] if dataset == "hand" else None,
                 thresholds_source=thr_source)
    return score


def run(args: argparse.Namespace) -> int:
    if args.protocol == "zhu":
        _check_zhu_args(args)
    elif args.image_size is not None or args.images is not None or args.sizes is not None \
            or args.grid is not None:
        raise XLMError("--image-size / --images / --sizes / --grid are used by --protocol zhu only "
                       "(the clean protocol scores in the original image)")
    pred = read_landmark_csv(args.pred)
    gt = read_landmark_csv(args.gt)
    ids, dropped = _paired(pred, gt, args)
    n_pred, n_gt = len(next(iter(pred.values()))), len(next(iter(gt.values())))
    if n_pred != n_gt:
        raise XLMError(f"{args.pred} has {n_pred} landmarks per image, {args.gt} has {n_gt}")
    pred_px = np.stack([pred[i] for i in ids])
    gt_px = np.stack([gt[i] for i in ids])
    if args.protocol == "zhu":
        if args.dataset == "hand":
            a, b = args.wrist or ZHU_WRIST_PAIR
            if max(a, b) >= n_gt:
                raise XLMError(
                    f"wrist pair {a + 1},{b + 1} (1-based) is beyond the {n_gt} landmarks of {args.gt}"
                )
        score = score_zhu(args, ids, pred_px, gt_px)
    else:
        scale = resolve_scale(args)
        if scale.wrist_pair is not None and max(scale.wrist_pair) >= n_gt:
            a, b = scale.wrist_pair
            raise XLMError(
                f"wrist pair {a + 1},{b + 1} (1-based) is beyond the {n_gt} landmarks of {args.gt}"
            )
        thresholds, thr_source = resolve_thresholds(args, scale.unit)
        score = evaluate_clean(pred_px, gt_px, scale, thresholds, strict=args.sdr_strict)
        score["scale"] = scale.describe()
        score["wrist_pair"] = (
            [scale.wrist_pair[0] + 1, scale.wrist_pair[1] + 1] if scale.wrist_pair else None
        )
        score["thresholds_source"] = thr_source
    score["dropped_images"] = dropped
    if args.json:
        print(json.dumps(score))
        return 0
    print(format_score(score))
    return 0


def format_score(score: dict) -> str:
    """Human-readable summary and per-landmark table of a SCORE dict.

    Args:
        score: a SCORE dict as ``xlm score`` builds it.

    Returns:
        The text to print.
    """
    unit = score["unit"]
    lines = [
        (
            f"protocol: {score['protocol']}   images: {score['n_images']}"
            f"   landmarks: {score['n_landmarks']}"
        ),
        f"unit: {score.get('scale', unit)}",
    ]
    if score.get("grid"):
        lines.append(f"grid: {score['grid'][0]}x{score['grid'][1]} (W x H); image sizes from "
                     f"{score.get('image_sizes', '?')}")
    if score.get("wrist_pair"):
        a, b = score["wrist_pair"]
        lines.append(f"wrist pair: landmarks {a} and {b} (1-based)")
    if score.get("dropped_images"):
        lines.append(f"not scored (in one file only): {', '.join(score['dropped_images'])}")
    lines.append(f"MRE: {score['mre']:.3f} +/- {score['mre_std']:.3f} {unit}")
    keys = list(score["sdr"])
    rule = score.get("sdr_rule", "")
    op = "<" if rule.startswith("d < ") else "<="
    if keys:
        lines.append("SDR: " + "   ".join(f"{op} {k} {unit}: {score['sdr'][k]:.2f} %" for k in keys))
        lines.append(f"SDR rule: {rule}; thresholds: {score.get('thresholds_source', '?')}")
    else:
        lines.append("SDR: not computed (no thresholds)")
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
