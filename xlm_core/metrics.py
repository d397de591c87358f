"""Radial errors, MRE, SDR and the two evaluation protocols (``clean`` and ``zhu``).

Layouts: landmarks ``(N, L, 2)`` as (x, y); errors ``(N, L)``. No torch here.

- A radial error is the Euclidean distance between predicted and true (x, y), in pixels,
  converted to the dataset's unit by a factor per image (one factor for both axes: a
  physical spacing is per pixel, never a ``[H/S, W/S]`` pair applied to (x, y); trap 3).
- MRE: mean over all N x L radial errors; ``mre_std``: their standard deviation
  (population, ``ddof=0``).
- SDR at threshold t: percentage of radial errors ``<= t`` (the paper's definition; an error
  equal to the threshold counts, with a relative tolerance of 1e-9 so that float rounding,
  e.g. ``30 px x 0.1 mm/px = 3.0000000000000004 mm``, does not move a landmark across it).

Protocols (``docs/protocols.md``): ``clean`` compares sub-pixel predictions mapped back to the
original image with the float ground truth there (:func:`evaluate_clean`); ``zhu`` compares
integer argmax coordinates on the resized grid with the ground truth mapped to the grid and
rounded (:func:`evaluate_zhu`), as Zhu et al. 2021's code does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xlm_core import XLMError
from xlm_core.geometry import denormalise, normalise, to_grid

if TYPE_CHECKING:  # imported lazily: xlm_core.datasets pulls in every loader
    from xlm_core.datasets.base import Scale

SDR_RTOL = 1e-9
HEAD_MM_PER_PX = 0.1
WRIST_MM = 50.0
DEFAULT_THRESHOLDS: dict[str, tuple[float, ...]] = {
    "head": (2.0, 2.5, 3.0, 4.0),
    "hand": (2.0, 4.0, 10.0),
    "chest": (3.0, 6.0, 9.0),
}
PAYER_WRIST_PAIR = (1, 5)  # 0-based; 1-based landmarks 2 and 6 (Payer et al.'s code, .mha spacing)
ZHU_WRIST_PAIR = (0, 4)  # 0-based; 1-based landmarks 1 and 5 (Zhu et al.'s code)


def default_scale(dataset: str, wrist_pair: tuple[int, int] = PAYER_WRIST_PAIR) -> Scale:
    """The paper's error unit for ``dataset`` in original pixels; ``wrist_pair`` 0-based (hand)."""
    from xlm_core.datasets.base import Scale

    if dataset == "head":
        return Scale(unit="mm", mm_per_px=HEAD_MM_PER_PX)
    if dataset == "hand":
        return Scale(
            unit="mm", wrist_pair=(int(wrist_pair[0]), int(wrist_pair[1])), wrist_mm=WRIST_MM
        )
    if dataset == "chest":
        return Scale(unit="px")
    raise XLMError(f"unknown dataset {dataset!r}; expected one of {sorted(DEFAULT_THRESHOLDS)}")


def threshold_key(t: float) -> str:
    """The SDR dictionary key of a threshold: ``2.0 -> "2"``, ``2.5 -> "2.5"``."""
    return f"{float(t):g}"


def landmark_array(a: Any, name: str) -> np.ndarray:
    """``a`` as a float64 ``(N, L, 2)`` (x, y) array, or an XLMError naming ``name``."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise XLMError(f"{name} must be (N, L, 2) (x, y), got shape {arr.shape}")
    return arr


def radial_errors(pred_xy: Any, gt_xy: Any) -> np.ndarray:
    """Euclidean distance per landmark: ``(N, L, 2)`` x2 -> ``(N, L)`` (same unit as the input)."""
    pred = landmark_array(pred_xy, "predictions")
    gt = landmark_array(gt_xy, "ground truth")
    if pred.shape != gt.shape:
        raise XLMError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    return np.linalg.norm(pred - gt, axis=-1)


def per_image_mre(errors: Any) -> np.ndarray:
    """Mean radial error of each image: ``(N, L)`` -> ``(N,)`` (for paired statistics)."""
    err = np.asarray(errors, dtype=np.float64)
    if err.ndim != 2:
        raise XLMError(f"errors must be (N, L), got shape {err.shape}")
    return err.mean(axis=1)


def sdr_percent(errors: Any, threshold: float, axis: int | None = None) -> Any:
    """Percentage of errors ``<= threshold`` (relative tolerance :data:`SDR_RTOL`)."""
    err = np.asarray(errors, dtype=np.float64)
    hit = err <= threshold * (1.0 + SDR_RTOL)
    return 100.0 * hit.mean(axis=axis)


def score_errors(
    errors: Any, thresholds: Sequence[float], unit: str, protocol: str
) -> dict[str, Any]:
    """SCORE dict (``xlm_core/config.py``) from radial errors ``(N, L)`` already in ``unit``.

    Keys: n_images, n_landmarks, mre, mre_std, unit, protocol, sdr {"<t:g>": percent},
    per_landmark_mre [L], per_landmark_sdr {"<t:g>": [L] percent}. Plain Python floats.
    """
    err = np.asarray(errors, dtype=np.float64)
    if err.ndim != 2 or err.size == 0:
        raise XLMError(f"errors must be a non-empty (N, L) array, got shape {err.shape}")
    if not np.isfinite(err).all():
        bad = np.argwhere(~np.isfinite(err))[:5].tolist()
        raise XLMError(
            f"non-finite radial errors at (image, landmark) {bad} (missing coordinates?)"
        )
    keys = [threshold_key(t) for t in thresholds]
    return {
        "n_images": int(err.shape[0]),
        "n_landmarks": int(err.shape[1]),
        "mre": float(err.mean()),
        "mre_std": float(err.std()),
        "unit": unit,
        "protocol": protocol,
        "sdr": {k: float(sdr_percent(err, t)) for k, t in zip(keys, thresholds)},
        "per_landmark_mre": [float(v) for v in err.mean(axis=0)],
        "per_landmark_sdr": {
            k: [float(v) for v in sdr_percent(err, t, axis=0)] for k, t in zip(keys, thresholds)
        },
    }


def errors_clean(pred_px: Any, gt_px: Any, scale: Scale) -> np.ndarray:
    """Radial errors ``(N, L)`` in ``scale.unit``: pixel errors x ``scale.factors(gt_px)``."""
    err_px = radial_errors(pred_px, gt_px)
    with np.errstate(divide="ignore", invalid="ignore"):  # zero wrist width: reported below
        factors = np.asarray(scale.factors(np.asarray(gt_px, dtype=np.float64)), dtype=np.float64)
    if not np.isfinite(factors).all():
        bad = np.nonzero(~np.isfinite(factors))[0][:5].tolist()
        raise XLMError(
            f"no finite {scale.describe()} for images at positions {bad} (wrist width 0?)"
        )
    return err_px * factors[:, None]


def evaluate_clean(
    pred_px: Any, gt_px: Any, scale: Scale, thresholds: Sequence[float]
) -> dict[str, Any]:
    """The ``clean`` protocol: float (x, y) original px ``(N, L, 2)`` -> SCORE in ``scale.unit``."""
    return score_errors(errors_clean(pred_px, gt_px, scale), thresholds, scale.unit, "clean")


def zhu_units(scale: Scale | None) -> dict[str, float]:
    """Keyword arguments of :func:`errors_zhu` / :func:`evaluate_zhu` from a dataset's scale:
    its own head spacing and wrist width (ISBI's 0.1 mm/px and 50 mm when ``scale`` is None
    or sets none; a phantom set records its own spacing)."""
    units: dict[str, float] = {}
    if scale is not None:
        units["wrist_mm"] = float(scale.wrist_mm)
        if scale.mm_per_px is not None:
            units["mm_per_px"] = float(scale.mm_per_px)
    return units


def errors_zhu(
    pred_grid: Any,
    gt_px: Any,
    image_hws: Sequence[tuple[int, int]],
    grid_hw: tuple[int, int],
    dataset: str,
    wrist_pair: tuple[int, int] = ZHU_WRIST_PAIR,
    mm_per_px: float = HEAD_MM_PER_PX,
    wrist_mm: float = WRIST_MM,
) -> tuple[np.ndarray, str]:
    """Radial errors ``(N, L)`` of the ``zhu`` protocol and their unit. See :func:`evaluate_zhu`."""
    pred = np.rint(landmark_array(pred_grid, "grid predictions"))
    gt = landmark_array(gt_px, "ground truth")
    if pred.shape != gt.shape:
        raise XLMError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    if len(image_hws) != gt.shape[0]:
        raise XLMError(f"{len(image_hws)} image sizes for {gt.shape[0]} images")
    gt_grid = np.rint(np.stack([to_grid(g, hw, grid_hw) for g, hw in zip(gt, image_hws)]))
    err_grid = np.linalg.norm(pred - gt_grid, axis=-1)
    if dataset == "head":
        grid_h = float(grid_hw[0])
        factors = np.array([mm_per_px * float(hw[0]) / grid_h for hw in image_hws])
        unit = "mm"
    elif dataset == "hand":
        a, b = wrist_pair
        width_grid = np.linalg.norm(gt_grid[:, a] - gt_grid[:, b], axis=-1)
        if (width_grid <= 0).any():
            bad = np.nonzero(width_grid <= 0)[0][:5].tolist()
            raise XLMError(f"zero wrist width on the grid for images at positions {bad}")
        factors = wrist_mm / width_grid
        unit = "mm"
    elif dataset == "chest":
        factors = np.ones(gt.shape[0])
        unit = "px"
    else:
        raise XLMError(
            f"unknown dataset {dataset!r} for the zhu protocol; expected head, hand or chest"
        )
    return err_grid * factors[:, None], unit


def evaluate_zhu(
    pred_grid: Any,
    gt_px: Any,
    image_hws: Sequence[tuple[int, int]],
    grid_hw: tuple[int, int],
    dataset: str,
    thresholds: Sequence[float],
    wrist_pair: tuple[int, int] = ZHU_WRIST_PAIR,
    mm_per_px: float = HEAD_MM_PER_PX,
    wrist_mm: float = WRIST_MM,
) -> dict[str, Any]:
    """The ``zhu`` protocol (comparable with Zhu et al. 2021): SCORE.

    ``pred_grid`` ``(N, L, 2)``: argmax (x, y) on the ``grid_hw`` (H, W) grid (rounded to
    integers); ``gt_px`` ``(N, L, 2)`` in original pixels, mapped with
    :func:`xlm_core.geometry.to_grid` and rounded; ``image_hws``: each image's (H, W).
    Unit per grid pixel: head ``mm_per_px x H / grid_H`` mm (0.1 mm/px in ISBI: 0.46875 for
    2400 -> 512; a phantom set passes its own spacing); hand ``wrist_mm / |gt_grid[a] -
    gt_grid[b]|`` with ``wrist_pair`` 0-based (default Zhu's 1-based 1 and 5); chest grid pixels.
    """
    err, unit = errors_zhu(pred_grid, gt_px, image_hws, grid_hw, dataset, wrist_pair,
                           mm_per_px, wrist_mm)
    return score_errors(err, thresholds, unit, "zhu")


def normalise_landmarks(landmarks_px: Any, image_hws: Sequence[tuple[int, int]]) -> np.ndarray:
    """``(N, L, 2)`` (x, y) pixels -> normalised [0, 1] coordinates (pixel-centre convention)."""
    lm = landmark_array(landmarks_px, "landmarks")
    if len(image_hws) != lm.shape[0]:
        raise XLMError(f"{len(image_hws)} image sizes for {lm.shape[0]} images")
    return np.stack([normalise(p, hw) for p, hw in zip(lm, image_hws)])


def mean_shape_baseline(train_landmarks_norm: Any) -> np.ndarray:
    """The mean shape ``(L, 2)``: average training position of each landmark, normalised coords.

    ``train_landmarks_norm``: ``(N, L, 2)`` in [0, 1] (see :func:`normalise_landmarks`).
    """
    lm = landmark_array(train_landmarks_norm, "training landmarks")
    if lm.shape[0] == 0:
        raise XLMError("the mean-shape baseline needs at least one training image")
    return lm.mean(axis=0)


def place_mean_shape(mean_shape_norm: Any, image_hws: Sequence[tuple[int, int]]) -> np.ndarray:
    """The mean shape ``(L, 2)`` placed on images of sizes ``image_hws`` -> ``(N, L, 2)`` pixels."""
    shape = np.asarray(mean_shape_norm, dtype=np.float64)
    if shape.ndim != 2 or shape.shape[-1] != 2:
        raise XLMError(f"mean shape must be (L, 2), got shape {shape.shape}")
    return np.stack([denormalise(shape, hw) for hw in image_hws])


def baseline_ratio(score: dict) -> float:
    """``mre / mean_shape_mre`` of a score (a protocol score, or a run's ``metrics.json``):
    below 1 the model beats the mean shape; the demo's quality floor is 0.35. NaN when the
    score has no (or a zero) mean-shape MRE."""
    base = score.get("mean_shape_mre")
    return float(score["mre"]) / float(base) if base else float("nan")
