"""Evidence beyond the paper: how much a protocol choice alone moves a number, per-landmark
errors, and the worst predictions. Pure numpy/pandas over what a run's evaluation produces
(grid predictions, ground truth, radial errors), so everything here is testable without
training. Metrics are never re-implemented: scores come from :mod:`xlm_core.metrics`.

Layouts: landmarks ``(N, L, 2)`` as (x, y); ground truth in original-image pixels; grid
predictions in pixels of the ``grid_hw`` = (H, W) grid; heatmaps ``(N, L, H, W)``; radial
errors ``(N, L)``; image sizes ``[(H, W)] * N``. Landmarks are numbered 1-based in every
table (as in the CSV files and the papers), 0-based in arguments (as in :mod:`xlm_core.metrics`).

- :func:`protocol_table`: one set of predictions scored under every combination of decoding
  (integer ``argmax`` / ``subpixel``), protocol (``clean`` / ``zhu``) and, for the hand, wrist
  pair (Payer's 1-based 2,6 / Zhu's 1,5): the spread of those rows is how much of a published
  difference the evaluation alone can produce.
- :func:`per_landmark_table`, :func:`worst_predictions`, :func:`read_error_matrix`: per-landmark
  MRE/SDR, the k worst (image, landmark) pairs or images, and the ``(N, L)`` error matrix of a
  run's ``predictions.csv``.
- :func:`wrist_width_ratio`: per image, the ratio of the two wrist widths (= the ratio of the
  hand mm errors the two pairs give for the same pixel errors; median 1.07 on the 909 DHA images).
- The inter-observer limit of the head is :mod:`xlm_core.report.human_limit`.

Why this file is over 500 lines: the four analyses of the "beyond" chapter share their array
layouts and scoring calls; each is a few short functions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xlm_core import XLMError
from xlm_core.geometry import from_grid
from xlm_core.heatmaps import decode_argmax, decode_subpixel
from xlm_core.metrics import (
    DEFAULT_THRESHOLDS,
    PAYER_WRIST_PAIR,
    WRIST_MM,
    ZHU_WRIST_PAIR,
    default_scale,
    errors_zhu,
    evaluate_clean,
    landmark_array,
    score_errors,
    threshold_key,
    zhu_to_grid,
    zhu_units,
)

if TYPE_CHECKING:
    from xlm_core.datasets.base import Scale

DECODINGS = ("argmax", "subpixel")
PROTOCOLS = ("clean", "zhu")
#: the two hand wrist pairs (0-based) in the order of the table; the first is the reference
HAND_WRIST_PAIRS: tuple[tuple[int, int], ...] = (PAYER_WRIST_PAIR, ZHU_WRIST_PAIR)
WRIST_PAIR_SOURCES = {PAYER_WRIST_PAIR: "Payer", ZHU_WRIST_PAIR: "Zhu"}


def wrist_pair_label(pair: tuple[int, int] | None) -> str | None:
    """0-based pair -> the table label, 1-based: ``(1, 5)`` -> ``"2,6"``; None -> None."""
    if pair is None:
        return None
    return f"{int(pair[0]) + 1},{int(pair[1]) + 1}"


def sdr_column(threshold: float) -> str:
    """The DataFrame column of an SDR threshold: ``2.5`` -> ``"sdr_2.5"``."""
    return f"sdr_{threshold_key(threshold)}"


def _errors(errors: Any) -> np.ndarray:
    err = np.asarray(errors, dtype=np.float64)
    if err.ndim != 2 or err.size == 0:
        raise XLMError(f"errors must be a non-empty (N, L) array, got shape {err.shape}")
    return err


def _names(names: Sequence[str] | None, n_landmarks: int) -> list[str]:
    if names is None:
        return [str(k + 1) for k in range(n_landmarks)]
    names = [str(n) for n in names]
    if len(names) != n_landmarks:
        raise XLMError(f"{len(names)} landmark names for {n_landmarks} landmarks")
    return names


def _decoded(
    heatmaps: Any, grid_argmax: Any, grid_subpixel: Any, grid_hw: tuple[int, int] | None
) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """``{decoding: (N, L, 2) grid (x, y)}`` and the grid (H, W), from heatmaps or given grids."""
    if heatmaps is not None:
        if grid_argmax is not None or grid_subpixel is not None:
            raise XLMError("give either heatmaps or decoded grid coordinates, not both")
        maps = np.asarray(heatmaps)
        if maps.ndim != 4:
            raise XLMError(f"heatmaps must be (N, L, H, W), got shape {maps.shape}")
        hw = (int(maps.shape[-2]), int(maps.shape[-1]))
        if grid_hw is not None and tuple(int(v) for v in grid_hw) != hw:
            raise XLMError(f"grid_hw {tuple(grid_hw)} differs from the heatmaps' (H, W) {hw}")
        return {"argmax": decode_argmax(maps), "subpixel": decode_subpixel(maps)}, hw
    decoded = {
        name: landmark_array(xy, f"grid_{name}")
        for name, xy in (("argmax", grid_argmax), ("subpixel", grid_subpixel))
        if xy is not None
    }
    if not decoded:
        raise XLMError("protocol_table needs heatmaps or grid_argmax / grid_subpixel predictions")
    if grid_hw is None:
        raise XLMError("grid_hw (H, W) is needed with decoded grid coordinates")
    return decoded, (int(grid_hw[0]), int(grid_hw[1]))


def zhu_grid_step(gt_px: Any, image_hws: Sequence[tuple[int, int]], grid_hw: tuple[int, int],
                  dataset: str, wrist_pair: tuple[int, int] = ZHU_WRIST_PAIR,
                  scale: Scale | None = None) -> float:
    """How large one grid pixel is in the ``zhu`` protocol's unit (median over the images).

    Measured with :func:`xlm_core.metrics.errors_zhu` itself: a prediction one grid pixel beside
    each ground-truth grid position scores exactly one step. The zhu protocol rounds both to
    integer grid positions, so its errors are multiples of this step (on each axis) and an SDR
    threshold below it counts exact grid hits only.

    Args:
        gt_px: ``(N, L, 2)`` (x, y) ground truth in original pixels.
        image_hws: each image's original (H, W).
        grid_hw: the grid's (H, W).
        dataset: ``head``, ``hand`` or ``chest``.
        wrist_pair: hand: the 0-based wrist pair of the zhu unit.
        scale: the run's scale (its spacing; :func:`xlm_core.metrics.zhu_units`).

    Returns:
        The step in the zhu unit (mm for head and hand, grid px for the chest).
    """
    gt = landmark_array(gt_px, "ground truth")
    gh, gw = (int(v) for v in grid_hw)
    shifted = []
    for g, hw in zip(gt, image_hws, strict=True):
        grid = np.asarray(zhu_to_grid(g, hw, (gh, gw), dataset), dtype=np.float64)
        step = np.where(grid[:, 0] >= gw - 1, -1.0, 1.0)
        shifted.append(np.stack([grid[:, 0] + step, grid[:, 1]], axis=1))
    err, _ = errors_zhu(np.stack(shifted), gt, image_hws, (gh, gw), dataset, wrist_pair=wrist_pair,
                        **zhu_units(scale))
    return float(np.median(err))


def protocol_table(
    gt_px: Any,
    image_hws: Sequence[tuple[int, int]],
    dataset: str,
    *,
    heatmaps: Any = None,
    grid_argmax: Any = None,
    grid_subpixel: Any = None,
    grid_hw: tuple[int, int] | None = None,
    thresholds: Sequence[float] | None = None,
    wrist_pairs: Sequence[tuple[int, int]] = HAND_WRIST_PAIRS,
    scale: Scale | None = None,
) -> pd.DataFrame:
    """The same predictions under every decoding x protocol (x wrist pair for the hand).

    Predictions: ``heatmaps`` ``(N, L, H, W)`` (decoded here with both decoders), or
    ``grid_argmax`` and/or ``grid_subpixel`` ``(N, L, 2)`` (x, y) on the ``grid_hw`` grid
    (as in :class:`xlm_core.evaluation.SplitPredictions`; a missing one gives no rows).
    ``gt_px`` ``(N, L, 2)`` (x, y) in original pixels, ``image_hws`` each image's (H, W).
    ``dataset``: ``head``, ``hand`` or ``chest`` (their units; ``thresholds`` default to the
    paper's). ``wrist_pairs``: 0-based pairs for the hand, ignored otherwise. ``scale``: the
    dataset's own :class:`~xlm_core.datasets.base.Scale` when it is not the paper's (synthetic
    phantoms: e.g. a head at 1 mm per pixel): clean rows then use it (the hand: its
    ``wrist_mm`` with each pair), and head ``zhu`` rows use its spacing instead of 0.1 mm
    (``mm_per_px x H / grid_H`` per grid pixel, the zhu rule for that spacing).

    Scoring: ``clean`` maps the grid prediction back with :func:`xlm_core.geometry.from_grid`
    and uses :func:`xlm_core.metrics.evaluate_clean`; ``zhu`` uses
    :func:`xlm_core.metrics.evaluate_zhu`, which rounds any prediction to integer grid
    pixels, so under ``zhu`` a sub-pixel row differs from the argmax row only where the
    rounded refined peak is a neighbour of the argmax.

    Returns one row per combination, in the order decoding, protocol, wrist pair, with
    columns ``dataset, decoding, protocol, wrist_pair`` (1-based ``"2,6"``, None when not the
    hand), ``n_images, n_landmarks, mre, mre_std, unit, sdr_<t>...`` and
    ``mre_change_pct``: 100 x (mre / reference mre - 1), the reference being the
    ``subpixel``/``clean`` row with the first wrist pair (or the first row when absent).
    """
    if dataset not in DEFAULT_THRESHOLDS:
        raise XLMError(
            f"unknown dataset {dataset!r} for the protocol table;"
            f" expected one of {sorted(DEFAULT_THRESHOLDS)}"
        )
    gt = landmark_array(gt_px, "ground truth")
    image_hws = [(int(h), int(w)) for h, w in image_hws]
    if len(image_hws) != gt.shape[0]:
        raise XLMError(f"{len(image_hws)} image sizes for {gt.shape[0]} images")
    decoded, grid = _decoded(heatmaps, grid_argmax, grid_subpixel, grid_hw)
    for name, xy in decoded.items():
        if np.shape(xy) != gt.shape:
            raise XLMError(
                f"{name} predictions {np.shape(xy)} and ground truth {gt.shape} differ in shape"
            )
    thresholds = tuple(DEFAULT_THRESHOLDS[dataset] if thresholds is None else thresholds)
    pairs: list[tuple[int, int] | None]
    if dataset == "hand":
        pairs = [(int(a), int(b)) for a, b in wrist_pairs]
        if not pairs:
            raise XLMError("the hand protocol table needs at least one wrist pair")
        for a, b in pairs:
            if not (0 <= a < gt.shape[1] and 0 <= b < gt.shape[1]) or a == b:
                raise XLMError(
                    f"wrist pair {(a, b)} (0-based) is not two landmarks of {gt.shape[1]}"
                )
    else:
        pairs = [None]

    rows = []
    for decoding in DECODINGS:
        if decoding not in decoded:
            continue
        pred_grid = np.asarray(decoded[decoding], dtype=np.float64)
        pred_px = np.stack([from_grid(p, hw, grid) for p, hw in zip(pred_grid, image_hws)])
        for protocol in PROTOCOLS:
            for pair in pairs:
                if protocol == "clean":
                    score = evaluate_clean(pred_px, gt, _clean_scale(dataset, pair, scale), thresholds)
                else:
                    err, unit = errors_zhu(pred_grid, gt, image_hws, grid, dataset,
                                           wrist_pair=pair or ZHU_WRIST_PAIR, **zhu_units(scale))
                    score = score_errors(err, thresholds, unit, "zhu")
                    score["grid"] = f"{grid[0]}x{grid[1]} grid"
                    score["grid_step"] = zhu_grid_step(gt, image_hws, grid, dataset,
                                                       pair or ZHU_WRIST_PAIR, scale)
                row = {
                    "dataset": dataset,
                    "decoding": decoding,
                    "protocol": protocol,
                    "wrist_pair": wrist_pair_label(pair),
                    "n_images": score["n_images"],
                    "n_landmarks": score["n_landmarks"],
                    "mre": score["mre"],
                    "mre_std": score["mre_std"],
                    "unit": score["unit"],
                    "measured_on": score.get("grid", "original image"),
                    "grid_step": score.get("grid_step", math.nan),
                }
                row.update({sdr_column(t): score["sdr"][threshold_key(t)] for t in thresholds})
                rows.append(row)
    table = pd.DataFrame(rows)
    ref_pair = wrist_pair_label(pairs[0])
    same_pair = table["wrist_pair"].isna() if ref_pair is None else table["wrist_pair"] == ref_pair
    ref = table[(table["decoding"] == "subpixel") & (table["protocol"] == "clean") & same_pair]
    ref_mre = float(ref["mre"].iloc[0]) if len(ref) else float(table["mre"].iloc[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        table["mre_change_pct"] = 100.0 * (table["mre"] / ref_mre - 1.0)
    return table


def _clean_scale(dataset: str, pair: tuple[int, int] | None, scale: Scale | None) -> Scale:
    """The clean protocol's scale: the dataset's own (``scale``) or the paper's, with ``pair``."""
    from xlm_core.datasets.base import Scale as _Scale

    if scale is None:
        return default_scale(dataset, pair) if pair else default_scale(dataset)
    if pair is not None:
        return _Scale(unit="mm", wrist_pair=(int(pair[0]), int(pair[1])), wrist_mm=float(scale.wrist_mm))
    return scale


def per_landmark_table(
    errors: Any, thresholds: Sequence[float], names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per-landmark MRE and SDR from radial errors ``(N, L)`` (already in the dataset's unit).

    Columns: ``landmark`` (1-based), ``name`` (``names`` or the number), ``mre``, ``mre_std``
    (population), ``median``, ``max``, ``sdr_<t>`` (percent of images with error <= t, as
    :func:`xlm_core.metrics.score_errors`). One row per landmark, in landmark order.
    """
    err = _errors(errors)
    score = score_errors(err, thresholds, unit="", protocol="")
    table = pd.DataFrame(
        {
            "landmark": np.arange(1, err.shape[1] + 1),
            "name": _names(names, err.shape[1]),
            "mre": score["per_landmark_mre"],
            "mre_std": err.std(axis=0),
            "median": np.median(err, axis=0),
            "max": err.max(axis=0),
        }
    )
    for t in thresholds:
        table[sdr_column(t)] = score["per_landmark_sdr"][threshold_key(t)]
    return table


def worst_predictions(
    errors: Any,
    ids: Sequence[str],
    k: int = 10,
    by: str = "landmark",
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The ``k`` worst predictions, worst first, for a gallery; ``errors`` ``(N, L)``.

    ``by="landmark"``: the k largest single errors, columns ``rank, image_id, landmark``
    (1-based), ``name, error``. ``by="image"``: the k images with the largest MRE, columns
    ``rank, image_id, mre, max_error, worst_landmark`` (1-based). Ties keep the input order
    (image, then landmark). Fewer rows when there are fewer than k candidates.
    """
    err = _errors(errors)
    ids = [str(i) for i in ids]
    if len(ids) != err.shape[0]:
        raise XLMError(f"{len(ids)} image ids for {err.shape[0]} rows of errors")
    if int(k) < 1:
        raise XLMError(f"k must be at least 1, got {k}")
    if not np.isfinite(err).all():
        raise XLMError("errors contain non-finite values (missing coordinates?)")
    label = _names(names, err.shape[1])
    if by == "landmark":
        order = np.argsort(-err.reshape(-1), kind="stable")[: int(k)]
        img, lmk = np.unravel_index(order, err.shape)
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(order) + 1),
                "image_id": [ids[i] for i in img],
                "landmark": lmk + 1,
                "name": [label[j] for j in lmk],
                "error": err[img, lmk],
            }
        )
    if by == "image":
        mre = err.mean(axis=1)
        order = np.argsort(-mre, kind="stable")[: int(k)]
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(order) + 1),
                "image_id": [ids[i] for i in order],
                "mre": mre[order],
                "max_error": err[order].max(axis=1),
                "worst_landmark": err[order].argmax(axis=1) + 1,
            }
        )
    raise XLMError(f"worst_predictions: by must be 'landmark' or 'image', got {by!r}")


def wrist_width_ratio(
    gt_px: Any,
    numerator: tuple[int, int] = ZHU_WRIST_PAIR,
    denominator: tuple[int, int] = PAYER_WRIST_PAIR,
) -> np.ndarray:
    """Per image, the wrist width of ``numerator`` over that of ``denominator`` (0-based pairs).

    ``gt_px`` ``(N, L, 2)`` (x, y) pixels -> ``(N,)``. The hand unit is 50 mm / wrist width,
    so for the same pixel errors this is also (mm error under ``denominator``) / (mm error
    under ``numerator``). Defaults: Zhu's width (1-based 1,5) over Payer's (2,6), 1.07 in the
    median over the 909 DHA images: Payer-pair mm errors are about 7 % larger.
    """
    gt = landmark_array(gt_px, "ground truth")
    for pair in (numerator, denominator):
        if not all(0 <= int(i) < gt.shape[1] for i in pair):
            raise XLMError(f"wrist pair {tuple(pair)} (0-based) outside {gt.shape[1]} landmarks")
    top = np.linalg.norm(gt[:, numerator[0]] - gt[:, numerator[1]], axis=-1)
    bottom = np.linalg.norm(gt[:, denominator[0]] - gt[:, denominator[1]], axis=-1)
    if (bottom <= 0).any():
        bad = np.nonzero(bottom <= 0)[0][:5].tolist()
        raise XLMError(f"zero wrist width {tuple(denominator)} for images at positions {bad}")
    return top / bottom


def read_error_matrix(
    path: str | os.PathLike, column: str = "error", split: str | None = None
) -> tuple[list[str], np.ndarray]:
    """``(ids, errors (N, L))`` from a run's ``predictions.csv``
    (``image_id,landmark,x,y,error_px,error,split``), images in file order.

    ``column``: ``error`` (the dataset's unit) or ``error_px``; ``split``: keep only the rows
    of that split (``test``, ``heldout``, ...). Raises XLMError naming the file when the
    column is missing, a value is not finite, or an image lacks some of the landmarks 1..L.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"image_id": str, "split": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise XLMError(f"{path}: cannot read predictions CSV ({exc})") from None
    missing = {"image_id", "landmark", column} - set(frame.columns)
    if split is not None and "split" not in frame.columns:
        missing.add("split")
    if missing:
        raise XLMError(f"{path}: missing column(s) {sorted(missing)}")
    if split is not None:
        frame = frame[frame["split"] == split]
        if frame.empty:
            raise XLMError(f"{path}: no rows of split {split!r}")
    try:
        values = pd.to_numeric(frame[column], errors="raise").to_numpy(dtype=np.float64)
        landmarks = pd.to_numeric(frame["landmark"], errors="raise").to_numpy()
    except (ValueError, TypeError):
        raise XLMError(f"{path}: non-numeric {column!r} or landmark values") from None
    if not np.isfinite(values).all():
        raise XLMError(f"{path}: non-finite values in column {column!r}")
    ids = list(dict.fromkeys(frame["image_id"]))
    n_landmarks = int(landmarks.max())
    position = {i: r for r, i in enumerate(ids)}
    errors = np.full((len(ids), n_landmarks), np.nan)
    for image_id, landmark, value in zip(frame["image_id"], landmarks, values):
        if landmark < 1 or landmark != int(landmark):
            raise XLMError(f"{path}: landmark {landmark!r} is not a 1-based index")
        if not np.isnan(errors[position[image_id], int(landmark) - 1]):
            raise XLMError(f"{path}: duplicate landmark {int(landmark)} for image {image_id!r}")
        errors[position[image_id], int(landmark) - 1] = value
    if np.isnan(errors).any():
        bad = ids[int(np.argwhere(np.isnan(errors))[0][0])]
        raise XLMError(f"{path}: image {bad!r} lacks some of the landmarks 1..{n_landmarks}")
    return ids, errors


# --------------------------------------------------------------------------- one run's files

GRID_PREDICTIONS_NAME = "predictions_grid.npz"


def load_grid_predictions(run_path: str | os.PathLike, split: str = "test") -> dict[str, Any]:
    """One split of a run's ``predictions_grid.npz`` (written by
    :func:`xlm_core.evaluation.write_grid_predictions`), loaded without pickle.

    Returns ``dataset``, ``ids`` (list of str), ``grid_argmax`` / ``grid_subpixel`` (N, L, 2)
    (x, y) grid px, ``grid_hw`` (H, W), ``image_hws`` [(H, W)] * N, ``gt_px`` (N, L, 2) (x, y)
    original px, ``errors_zhu`` (N, L) or None, ``scale`` (the run's
    :class:`~xlm_core.datasets.base.Scale`, None when not stored). Raises XLMError naming the file when it is
    absent, unreadable, lacks the split, or its arrays disagree in shape.
    """
    path = Path(run_path)
    if path.is_dir():
        path = path / GRID_PREDICTIONS_NAME
    if not path.is_file():
        raise XLMError(f"{path}: not found (runs trained before it existed: retrain or re-evaluate)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise XLMError(f"{path}: not a readable .npz ({exc})") from None
    keys = ("ids", "grid_argmax", "grid_subpixel", "grid_hw", "image_hws", "gt_px")
    missing = [f"{split}_{k}" for k in keys if f"{split}_{k}" not in data]
    if missing:
        have = [str(s) for s in data.get("splits", [])]
        raise XLMError(f"{path}: no split {split!r} (missing {missing}; splits: {have})")
    ids = [str(i) for i in data[f"{split}_ids"]]
    out: dict[str, Any] = {
        "dataset": str(data["dataset"]) if "dataset" in data else None,
        "ids": ids,
        "grid_argmax": np.asarray(data[f"{split}_grid_argmax"], dtype=np.float64),
        "grid_subpixel": np.asarray(data[f"{split}_grid_subpixel"], dtype=np.float64),
        "grid_hw": tuple(int(v) for v in data[f"{split}_grid_hw"]),
        "image_hws": [(int(h), int(w)) for h, w in np.asarray(data[f"{split}_image_hws"])],
        "gt_px": np.asarray(data[f"{split}_gt_px"], dtype=np.float64),
        "errors_zhu": (np.asarray(data[f"{split}_errors_zhu"], dtype=np.float64)
                       if f"{split}_errors_zhu" in data else None),
        "scale": _stored_scale(data),
    }
    n = len(ids)
    for key in ("grid_argmax", "grid_subpixel", "gt_px"):
        if out[key].ndim != 3 or out[key].shape[0] != n or out[key].shape[-1] != 2:
            raise XLMError(f"{path}: {split}_{key} has shape {out[key].shape} for {n} images")
    if len(out["image_hws"]) != n or len(out["grid_hw"]) != 2:
        raise XLMError(f"{path}: {split}_image_hws / {split}_grid_hw do not match {n} images")
    return out


def _stored_scale(data: dict[str, np.ndarray]) -> Scale | None:
    """The run's Scale from the grid file (None for a file without one)."""
    from xlm_core.datasets.base import Scale as _Scale

    if "scale_unit" not in data:
        return None
    mm = float(data["mm_per_px"]) if "mm_per_px" in data else math.nan
    pair = tuple(int(v) for v in data.get("wrist_pair", (-1, -1)))
    return _Scale(unit=str(data["scale_unit"]), mm_per_px=None if math.isnan(mm) else mm,
                  wrist_pair=None if min(pair) < 0 else pair,
                  wrist_mm=float(data.get("wrist_mm", WRIST_MM)))


def run_protocol_table(
    run_path: str | os.PathLike,
    split: str = "test",
    dataset: str | None = None,
    thresholds: Sequence[float] | None = None,
    wrist_pairs: Sequence[tuple[int, int]] = HAND_WRIST_PAIRS,
) -> pd.DataFrame:
    """:func:`protocol_table` of one run's persisted grid predictions (no model needed).

    ``dataset`` defaults to the one recorded in the file; ``thresholds`` to the paper's; the
    run's own scale (stored in the file) converts errors. Rows and columns as in
    :func:`protocol_table`.
    """
    grid = load_grid_predictions(run_path, split)
    name = dataset or grid["dataset"]
    if not name:
        raise XLMError(f"{run_path}: the grid predictions do not name their dataset; pass dataset=")
    return protocol_table(
        grid["gt_px"], grid["image_hws"], name,
        grid_argmax=grid["grid_argmax"], grid_subpixel=grid["grid_subpixel"],
        grid_hw=grid["grid_hw"], thresholds=thresholds, wrist_pairs=wrist_pairs,
        scale=grid["scale"],
    )


# --------------------------------------------------------------------------- the human limit

#: ISBI 2015 test images (test1 151-300 and test2 301-400), as in the paper's split
ISBI_TEST_IDS: tuple[str, ...] = tuple(f"{i:03d}" for i in range(151, 401))
#: where Payer et al.'s head setup CSVs lie, relative to the repository root
PAYER_CSV_DIR = Path("..") / "shared" / "data" / "head" / "payer_setup"
PAYER_SOURCE = "real ISBI annotations (Payer et al.'s CSVs), images 151-400"
PAYER_FILES = ("all_senior.csv", "all_junior.csv")


def find_payer_csv_dir(explicit: str | os.PathLike | None = None,
                       repo: str | os.PathLike | None = None) -> Path | None:
    """The folder holding ``all_senior.csv`` and ``all_junior.csv``, or None when absent.

    ``explicit`` (a notebook parameter / study setting ``human_limit_csv_dir``) wins; a
    relative one is read against ``repo``. Otherwise ``repo/../shared/data/head/payer_setup``
    (``repo`` defaults to the checkout holding this package).
    """
    if repo is None:
        repo = Path(__file__).resolve().parents[2]
    repo = Path(repo)
    candidate = Path(explicit) if explicit else PAYER_CSV_DIR
    if not candidate.is_absolute():
        candidate = repo / candidate
    if all((candidate / f).is_file() for f in PAYER_FILES):
        return candidate.resolve()
    return None


def human_limit_frame(rows: Sequence[dict[str, Any]], source: str) -> pd.DataFrame:
    """SCORE rows of :mod:`xlm_core.report.human_limit` as a table labelled with their ``source``.

    Columns: ``comparison, source, protocol, n_images, n_landmarks, unit, mre, mre_std,
    sdr_<t>...``; the per-landmark MREs stay out (see :func:`human_per_landmark`).
    """
    if not rows:
        raise XLMError("no human-limit rows to tabulate")
    out = []
    for r in rows:
        row = {"comparison": r["comparison"], "source": source, "protocol": r.get("protocol"),
               "n_images": r["n_images"], "n_landmarks": r["n_landmarks"], "unit": r["unit"],
               "mre": r["mre"], "mre_std": r["mre_std"]}
        row.update({f"sdr_{k}": v for k, v in r["sdr"].items()})
        out.append(row)
    return pd.DataFrame(out)


def human_per_landmark(rows: Sequence[dict[str, Any]], comparison: str = "senior vs mean") -> np.ndarray:
    """``(L,)`` per-landmark MRE of one human-limit comparison (for the error-by-landmark plot)."""
    for r in rows:
        if r["comparison"] == comparison:
            return np.asarray(r["per_landmark_mre"], dtype=np.float64)
    raise XLMError(f"no human-limit comparison {comparison!r} (have {[r['comparison'] for r in rows]})")


def human_limit_from_dataset(root: str | os.PathLike, ids: Sequence[str] | None = None,
                             thresholds: Sequence[float] | None = None,
                             dataset: str = "head") -> list[dict[str, Any]]:
    """Human-limit rows from a real dataset with two readers, through its own loader.

    Each reader is loaded alone (``annotator=<reader>``), so the rows compare exactly the points
    the two files hold; the mean is the dataset's ground truth. Rows, in the dataset's unit and
    at its SDR thresholds: ``"<a> vs mean"``, ``"<b> vs mean"``, ``"<a> vs <b>"`` (head: senior,
    junior; ceph: mollabashi, farhadifar, errors in original pixels).

    Args:
        root: the dataset root (as for :func:`xlm_core.datasets.load_dataset`).
        ids: the images to compare; None: the test split of the mean ground truth (the images
            the models are scored on).
        thresholds: SDR thresholds; None: the dataset's.
        dataset: a built-in dataset with exactly two annotation sources (``head``, ``ceph``).

    Returns:
        The :func:`xlm_core.report.human_limit.human_limit_table` rows.

    Raises:
        XLMError: for a dataset without two readers, or an id that is not usable in both
            readers' files.
    """
    from xlm_core.datasets import builtin_descriptor, load_dataset
    from xlm_core.report.human_limit import human_limit_table

    readers = list(builtin_descriptor(dataset).sources)
    if len(readers) != 2:
        raise XLMError(f"dataset {dataset!r} has {len(readers)} annotation source(s); the human limit needs two")
    a, b = readers
    sets = {r: load_dataset(dataset, str(root), annotator=r) for r in readers}
    by_id = {r: {s.id: np.asarray(s.landmarks, dtype=np.float64) for s in lset.samples}
             for r, lset in sets.items()}
    wanted = [str(i) for i in (ids if ids is not None else load_dataset(dataset, str(root)).test_ids)]
    missing = [i for i in wanted if i not in by_id[a] or i not in by_id[b]]
    if missing:
        raise XLMError(f"{root}: no {a} and {b} annotations for images {missing[:10]} (absent or unusable)")
    if not wanted:
        raise XLMError(f"{root}: no images to compare the {dataset} readers on")
    first = np.stack([by_id[a][i] for i in wanted])
    second = np.stack([by_id[b][i] for i in wanted])
    th = tuple(thresholds) if thresholds is not None else tuple(sets[a].thresholds)
    return human_limit_table(first, second, scale=sets[a].scale, thresholds=th, names=(a, b))
