"""Radial errors, MRE, SDR and the two evaluation protocols (``clean`` and ``zhu``).

Layouts: landmarks ``(N, L, 2)`` as (x, y); errors ``(N, L)``. No torch here.

- A radial error is the Euclidean distance between predicted and true (x, y), in pixels,
  converted to the dataset's unit by a factor per image (one factor for both axes: a
  physical spacing is per pixel, never a ``[H/S, W/S]`` pair applied to (x, y); trap 3).
- MRE: mean over all N x L radial errors; ``mre_std``: their standard deviation
  (population, ``ddof=0``).
- SDR at threshold t: percentage of radial errors within t. The references disagree on an
  error exactly equal to t (:data:`SDR_TIE_RULES`); each SCORE names its rule in
  ``sdr_rule``. ``clean`` counts ``d <= t`` on exact distances (relative tolerance 1e-9, so
  that ``3 px x 0.1 mm/px = 0.30000000000000004 mm`` counts at 0.3 mm); ``zhu`` counts
  ``d <= t`` on Zhu et al.'s float distances, no tolerance, as their evaluator does;
  ``strict=True`` counts ``d < t`` instead (Payer et al.'s rule).

Protocols (``docs/protocols.md``): ``clean`` compares sub-pixel predictions mapped back to the
original image with the float ground truth there (:func:`evaluate_clean`); ``zhu`` reproduces
Zhu et al. 2021's evaluator (GU2Net, ``evaluation.py`` and the dataset readers): integer
coordinates on the resized grid for prediction and truth, the truth mapped by
``round(p * new / old)`` per axis (:func:`zhu_to_grid`), the unit's factor applied to each
axis before squaring (:func:`errors_zhu`, :func:`evaluate_zhu`).

**Why this file is long** (~600 lines): it holds both protocols side by side on purpose, so
the one difference that matters (how a distance and a tie are computed) can be read in one
place; the ``zhu`` protocol reproduces another project's evaluator to the float, and its
constants and float-order rules need their provenance written beside them. About half of the
lines are docstrings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from xlm_core import XLMError
from xlm_core.geometry import denormalise, normalise

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
#: Zhu et al.'s resized grid per dataset, (H, W) (their config.yaml gives W x H: head 416 x 512,
#: hand 368 x 512, chest 512 x 512); the paper's test sizes are the same.
ZHU_GRID_HW: dict[str, tuple[int, int]] = {"head": (512, 416), "hand": (512, 368), "chest": (512, 512)}
#: Zhu et al. draw the truth as a Gaussian of radius round(3 sigma) = 9 grid px (sigma 3) at the
#: rounded point and take its argmax: a point up to 8 grid px outside the grid lands on the
#: nearest border pixel; further out the heatmap is empty (argmax (0, 0)), refused here.
ZHU_TRUTH_MARGIN = 8
#: SDR thresholds used when neither a dataset nor ``--thresholds`` gives them, per unit
#: (mm: the ISBI head's, the most used; px: Zhu et al.'s chest thresholds).
UNIT_THRESHOLDS: dict[str, tuple[float, ...]] = {"mm": (2.0, 2.5, 3.0, 4.0), "px": (3.0, 6.0, 9.0)}
#: Version of each protocol's numbers, carried by every SCORE (``protocol_version``): zhu 2 is
#: Zhu et al.'s evaluator exactly (``round(p * new / old)``, float SDR); SCOREs without it, or
#: with an older version, were computed by an earlier rule (:func:`scores_are_current`).
PROTOCOL_VERSION: dict[str, int] = {"clean": 1, "zhu": 2}
#: How each public evaluator counts an error equal to the threshold (the SDR tie rule).
SDR_TIE_RULES: dict[str, str] = {
    "clean (this project)": "d <= t on exact distances: a tie counts (relative tolerance 1e-9 "
    "absorbs float noise such as 3 px x 0.1 mm/px = 0.30000000000000004 mm)",
    "Zhu et al. (GU2Net evaluation.py get_sdr)": "d <= t on float distances computed with each "
    "axis scaled before squaring: a tie counts only where float noise lands on or below t",
    "landmarker (metrics.sdr)": "d <= t on float distances between coordinates scaled to mm "
    "before subtracting (float32 tensors by default): as Zhu, other float noise",
    "Payer et al. (landmark_statistics get_num_outliers)": "outliers d >= t, so SDR counts "
    "d < t: a tie never counts (--sdr-strict)",
}


def default_scale(dataset: str, wrist_pair: tuple[int, int] = PAYER_WRIST_PAIR) -> Scale:
    """The paper's error unit for a built-in dataset, in original pixels.

    Args:
        dataset: ``head`` (0.1 mm per pixel), ``hand`` (mm from the wrist width) or ``chest``
            (pixels).
        wrist_pair: hand: the 0-based landmarks whose distance is :data:`WRIST_MM`.

    Returns:
        :class:`xlm_core.datasets.base.Scale`.

    Raises:
        XLMError: for another dataset name.
    """
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
    """The SDR dictionary key of a threshold: ``2.0 -> "2"``, ``2.5 -> "2.5"``.

    Args:
        t: the threshold.

    Returns:
        ``f"{t:g}"``.
    """
    return f"{float(t):g}"


def landmark_array(a: Any, name: str) -> np.ndarray:
    """Landmarks as a float64 ``(N, L, 2)`` (x, y) array.

    Args:
        a: array-like landmarks.
        name: what they are, for the error message.

    Returns:
        ``(N, L, 2)`` float64 numpy array.

    Raises:
        XLMError: for another shape, naming ``name``.
    """
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[-1] != 2:
        raise XLMError(f"{name} must be (N, L, 2) (x, y), got shape {arr.shape}")
    return arr


def radial_errors(pred_xy: Any, gt_xy: Any) -> np.ndarray:
    """Euclidean distance per landmark between predictions and truth.

    Args:
        pred_xy: ``(N, L, 2)`` (x, y) predictions.
        gt_xy: ``(N, L, 2)`` (x, y) ground truth, same unit.

    Returns:
        ``(N, L)`` float64 distances in the input's unit.

    Raises:
        XLMError: for arrays not shaped ``(N, L, 2)`` or of different shapes.
    """
    pred = landmark_array(pred_xy, "predictions")
    gt = landmark_array(gt_xy, "ground truth")
    if pred.shape != gt.shape:
        raise XLMError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    return np.linalg.norm(pred - gt, axis=-1)


def per_image_mre(errors: Any) -> np.ndarray:
    """Mean radial error of each image (for paired statistics).

    Args:
        errors: ``(N, L)`` radial errors.

    Returns:
        ``(N,)`` float64.

    Raises:
        XLMError: for another number of dimensions.
    """
    err = np.asarray(errors, dtype=np.float64)
    if err.ndim != 2:
        raise XLMError(f"errors must be (N, L), got shape {err.shape}")
    return err.mean(axis=1)


def sdr_tolerance(protocol: str) -> float:
    """Relative tolerance of the SDR comparison: 0 for ``zhu`` (Zhu et al. compare the float
    distance with t as it is), :data:`SDR_RTOL` otherwise (ties on exact distances).

    Args:
        protocol: the protocol's name (``clean``, ``zhu`` or any other label).

    Returns:
        The relative tolerance applied to the threshold.
    """
    return 0.0 if protocol == "zhu" else SDR_RTOL


def sdr_rule(protocol: str, strict: bool = False) -> str:
    """The SDR tie rule a SCORE of ``protocol`` uses, in words (its ``sdr_rule`` field).

    Args:
        protocol: the protocol's name.
        strict: True for Payer et al.'s ``d < t``.

    Returns:
        e.g. ``"d <= t, ties within 1e-09 relative count"``.
    """
    rtol = sdr_tolerance(protocol)
    op = "<" if strict else "<="
    if rtol == 0.0:
        return f"d {op} t on float distances, no tolerance (Zhu et al.'s evaluator)" + (
            "; strict as Payer et al." if strict else "")
    if strict:
        return f"d < t, ties within {rtol:g} relative do not count (Payer et al.'s rule)"
    return f"d <= t, ties within {rtol:g} relative count"


def sdr_percent(
    errors: Any, threshold: float, axis: int | None = None, strict: bool = False,
    rtol: float = SDR_RTOL,
) -> Any:
    """Percentage of errors within ``threshold``.

    Args:
        errors: radial errors, any shape.
        threshold: the SDR threshold, in the errors' unit.
        axis: axis to reduce over (None: all).
        strict: count ``d < t`` (Payer et al.) instead of ``d <= t``.
        rtol: relative tolerance: ``d <= t (1 + rtol)``, or ``d < t (1 - rtol)`` when strict.

    Returns:
        The percentage (a float, or an array when ``axis`` is given).
    """
    err = np.asarray(errors, dtype=np.float64)
    if strict:
        hit = err < threshold * (1.0 - rtol)
    else:
        hit = err <= threshold * (1.0 + rtol)
    return 100.0 * hit.mean(axis=axis)


def score_errors(
    errors: Any, thresholds: Sequence[float], unit: str, protocol: str, strict: bool = False
) -> dict[str, Any]:
    """SCORE dict (``xlm_core/config.py``) from radial errors ``(N, L)`` already in ``unit``.

    Keys: n_images, n_landmarks, mre, mre_std, unit, protocol, sdr {"<t:g>": percent},
    sdr_rule (the tie rule in words), per_landmark_mre [L], per_landmark_sdr {"<t:g>": [L]
    percent}. Plain Python floats. The SDR rule follows the protocol (:func:`sdr_tolerance`).

    Args:
        errors: ``(N, L)`` radial errors in ``unit``.
        thresholds: SDR thresholds in ``unit``.
        unit: the errors' unit (``mm``, ``px``).
        protocol: the protocol's name (``zhu`` compares without tolerance).
        strict: count ``d < t`` (Payer et al.) instead of ``d <= t``.

    Returns:
        The SCORE dict.

    Raises:
        XLMError: for an empty or non-2-D array, or non-finite errors.
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
    rule = {"strict": bool(strict), "rtol": sdr_tolerance(protocol)}
    return {
        "n_images": int(err.shape[0]),
        "n_landmarks": int(err.shape[1]),
        "mre": float(err.mean()),
        "mre_std": float(err.std()),
        "unit": unit,
        "protocol": protocol,
        "sdr": {k: float(sdr_percent(err, t, **rule)) for k, t in zip(keys, thresholds)},
        "sdr_rule": sdr_rule(protocol, strict),
        "protocol_version": PROTOCOL_VERSION.get(protocol),
        "per_landmark_mre": [float(v) for v in err.mean(axis=0)],
        "per_landmark_sdr": {
            k: [float(v) for v in sdr_percent(err, t, axis=0, **rule)]
            for k, t in zip(keys, thresholds)
        },
    }


def scores_are_current(metrics: dict) -> bool:
    """Whether every SCORE in a run's ``metrics.json`` was computed by its protocol's current rule.

    False when a SCORE was computed by an older rule of its protocol (:data:`PROTOCOL_VERSION`;
    a zhu SCORE without ``protocol_version`` predates Zhu et al.'s exact evaluator), so the run
    should be scored again from its checkpoint.

    Args:
        metrics: a run's ``metrics.json`` (``{"test": {"clean": SCORE, "zhu": SCORE}, ...}``).

    Returns:
        True when every SCORE of ``test`` and ``heldout`` is current (or there is none).
    """
    for split in ("test", "heldout"):
        block = metrics.get(split) if isinstance(metrics, dict) else None
        if not isinstance(block, dict):
            continue
        for protocol, score in block.items():
            if not isinstance(score, dict) or protocol not in PROTOCOL_VERSION:
                continue
            version = score.get("protocol_version", 1)
            if version != PROTOCOL_VERSION[protocol]:
                return False
    return True


def cumulative_errors(errors: Any) -> tuple[np.ndarray, np.ndarray]:
    """The cumulative point-error curve: share of landmarks within each distance.

    Args:
        errors: radial errors, any shape (all are pooled); must be finite.

    Returns:
        ``(distances, percent)``: the sorted errors and, at each, the percentage of errors
        ``<=`` it (a step function rising at each error; draw it with ``where="post"``).

    Raises:
        XLMError: for no errors or a non-finite one.
    """
    err = np.sort(np.asarray(errors, dtype=np.float64).ravel())
    if err.size == 0 or not np.isfinite(err).all():
        raise XLMError("a cumulative error curve needs a non-empty set of finite errors")
    percent = 100.0 * np.searchsorted(err, err, side="right") / err.size
    return err, percent


def errors_clean(pred_px: Any, gt_px: Any, scale: Scale) -> np.ndarray:
    """Radial errors of the ``clean`` protocol in the dataset's unit.

    Args:
        pred_px: ``(N, L, 2)`` (x, y) predictions in original pixels.
        gt_px: ``(N, L, 2)`` (x, y) ground truth in original pixels.
        scale: the dataset's unit rule (its ``factors(gt_px)`` give one factor per image).

    Returns:
        ``(N, L)`` float64 errors in ``scale.unit``.

    Raises:
        XLMError: for mismatched shapes, or a non-finite factor (e.g. a zero wrist width).
    """
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
    pred_px: Any, gt_px: Any, scale: Scale, thresholds: Sequence[float], strict: bool = False
) -> dict[str, Any]:
    """The ``clean`` protocol: float (x, y) original px ``(N, L, 2)`` -> SCORE in ``scale.unit``.

    Args:
        pred_px: ``(N, L, 2)`` predictions, original-image pixels.
        gt_px: ``(N, L, 2)`` ground truth, original-image pixels.
        scale: the dataset's unit rule.
        thresholds: SDR thresholds in ``scale.unit``.
        strict: SDR counts ``d < t`` (Payer et al.) instead of ``d <= t``.

    Returns:
        The SCORE dict (protocol ``clean``).
    """
    return score_errors(errors_clean(pred_px, gt_px, scale), thresholds, scale.unit, "clean",
                        strict=strict)


def zhu_units(scale: Scale | None) -> dict[str, float]:
    """Keyword arguments of :func:`errors_zhu` / :func:`evaluate_zhu` from a dataset's scale.

    Args:
        scale: the dataset's scale; its own head spacing and wrist width are used (a phantom
            set records its own spacing). None: none given.

    Returns:
        ``{"wrist_mm": ..., "mm_per_px": ...}`` with the keys the scale sets; the functions'
        defaults (ISBI's 0.1 mm/px and 50 mm) apply to missing ones.
    """
    units: dict[str, float] = {}
    if scale is not None:
        units["wrist_mm"] = float(scale.wrist_mm)
        if scale.mm_per_px is not None:
            units["mm_per_px"] = float(scale.mm_per_px)
    return units


def zhu_to_grid(
    xy_px: Any, image_hw: tuple[int, int], grid_hw: tuple[int, int], dataset: str,
    truth: bool = True,
) -> np.ndarray:
    """Zhu et al.'s mapping of ``(L, 2)`` (x, y) original pixels to integer grid pixels.

    ``round(p * new / old)`` per axis (x with the widths, y with the heights), Python's
    ``round`` (half to even), in the float order of their dataset readers: head and chest
    ``(p * new) / old``, hand ``p * (new / old)`` (the chest reader rounds ``ratio * new``; in
    Zhu's 279 chest label files no ``ratio x 512`` lies within 0.02 of a half, so ``(p * new) /
    old`` on ``p = ratio x W`` rounds the same). The
    result is clipped into the grid, as the argmax of their Gaussian truth heatmap (or of a
    predicted heatmap) is; ground truth more than :data:`ZHU_TRUTH_MARGIN` grid pixels outside
    the grid is refused (their heatmap would be empty there). No pixel-centre shift.

    Args:
        xy_px: ``(L, 2)`` (x, y) in original pixels.
        image_hw: the original image's (H, W).
        grid_hw: the grid's (H, W).
        dataset: ``head``, ``hand`` or ``chest`` (selects the float order).
        truth: ground truth (points far outside the grid refused) or predictions (clipped).

    Returns:
        ``(L, 2)`` float64 array of integer grid coordinates.

    Raises:
        XLMError: for another shape, a non-positive size, another dataset, or ground truth
            more than :data:`ZHU_TRUTH_MARGIN` grid pixels outside the grid.
    """
    what = "ground truth" if truth else "predictions"
    arr = np.asarray(xy_px, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[-1] != 2:
        raise XLMError(f"{what} must be (L, 2) (x, y), got shape {arr.shape}")
    h, w = (int(v) for v in image_hw)
    gh, gw = (int(v) for v in grid_hw)
    if min(h, w, gh, gw) <= 0:
        raise XLMError(f"image size {image_hw} and grid {grid_hw} must be positive (H, W)")
    if dataset not in ZHU_GRID_HW:
        raise XLMError(f"unknown dataset {dataset!r} for the zhu protocol; expected {sorted(ZHU_GRID_HW)}")
    if dataset == "hand":
        rx, ry = gw / w, gh / h
        points = [(round(x * rx), round(y * ry)) for x, y in arr.tolist()]
    else:
        points = [(round(x * gw / w), round(y * gh / h)) for x, y in arr.tolist()]
    out = np.array(points, dtype=np.float64).reshape(-1, 2)
    if truth:
        lo = -ZHU_TRUTH_MARGIN
        outside = ((out < lo) | (out > np.array([gw - 1, gh - 1]) + ZHU_TRUTH_MARGIN)).any(axis=1)
        if outside.any():
            k = int(np.nonzero(outside)[0][0])
            raise XLMError(
                f"ground-truth landmark {k + 1} at {tuple(arr[k])} px maps to {tuple(out[k])} on the "
                f"{gw}x{gh} grid, more than {ZHU_TRUTH_MARGIN} px outside it (image {w}x{h}): "
                "wrong image size or a bad annotation?")
    out[:, 0] = np.clip(out[:, 0], 0, gw - 1)
    out[:, 1] = np.clip(out[:, 1], 0, gh - 1)
    return out


def _zhu_radial(p: Sequence[float], q: Sequence[float], factor: float) -> float:
    """Zhu et al.'s ``radial``: ``sum(((i - j) * s) ** 2) ** 0.5``, in Python floats, so that a
    distance equal to a threshold comes out exactly as in their evaluator."""
    return (((p[0] - q[0]) * factor) ** 2 + ((p[1] - q[1]) * factor) ** 2) ** 0.5


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
    """Radial errors of the ``zhu`` protocol and their unit (see :func:`evaluate_zhu`).

    Args:
        pred_grid: ``(N, L, 2)`` (x, y) on the grid; rounded to integers, clipped into it.
        gt_px: ``(N, L, 2)`` (x, y) ground truth in original pixels.
        image_hws: each image's original (H, W).
        grid_hw: the grid's (H, W).
        dataset: ``head``, ``hand`` or ``chest``.
        wrist_pair: hand: the 0-based landmarks whose grid distance is ``wrist_mm``.
        mm_per_px: head: the original spacing (grid factor ``mm_per_px x H / grid_H``).
        wrist_mm: hand: the assumed wrist width in mm.

    Returns:
        ``(errors, unit)``: ``(N, L)`` float64 errors and ``"mm"`` (head, hand) or ``"px"``
        (chest).

    Raises:
        XLMError: for another dataset, mismatched shapes or counts, a wrist pair beyond the
            landmarks, a zero wrist width, or ground truth far outside the grid
            (:func:`zhu_to_grid`).
    """
    if dataset not in ZHU_GRID_HW:
        raise XLMError(
            f"unknown dataset {dataset!r} for the zhu protocol; expected head, hand or chest"
        )
    pred = np.rint(landmark_array(pred_grid, "grid predictions"))
    gt = landmark_array(gt_px, "ground truth")
    if pred.shape != gt.shape:
        raise XLMError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    if len(image_hws) != gt.shape[0]:
        raise XLMError(f"{len(image_hws)} image sizes for {gt.shape[0]} images")
    gh, gw = (int(v) for v in grid_hw)
    pred[..., 0] = np.clip(pred[..., 0], 0, gw - 1)
    pred[..., 1] = np.clip(pred[..., 1], 0, gh - 1)
    gt_grid = []
    for n, (g, hw) in enumerate(zip(gt, image_hws)):
        try:
            gt_grid.append(zhu_to_grid(g, hw, grid_hw, dataset))
        except XLMError as exc:
            raise XLMError(f"image at position {n}: {exc}") from None
    if dataset == "head":
        factors = [mm_per_px * float(hw[0]) / float(gh) for hw in image_hws]
        unit = "mm"
    elif dataset == "hand":
        a, b = wrist_pair
        if max(a, b) >= gt.shape[1]:
            raise XLMError(f"wrist pair {a + 1},{b + 1} (1-based) beyond {gt.shape[1]} landmarks")
        widths = [_zhu_radial(g[a].tolist(), g[b].tolist(), 1.0) for g in gt_grid]
        if min(widths) <= 0:
            bad = [i for i, v in enumerate(widths) if v <= 0][:5]
            raise XLMError(f"zero wrist width on the grid for images at positions {bad}")
        factors = [wrist_mm / v for v in widths]
        unit = "mm"
    else:
        factors = [1.0] * gt.shape[0]
        unit = "px"
    err = np.array(
        [[_zhu_radial(p, q, s) for p, q in zip(pi.tolist(), gi.tolist())]
         for pi, gi, s in zip(pred, gt_grid, factors)],
        dtype=np.float64,
    ).reshape(gt.shape[:2])
    return err, unit


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
    strict: bool = False,
) -> dict[str, Any]:
    """The ``zhu`` protocol (Zhu et al. 2021's evaluator, exactly): SCORE.

    Prediction: integer (x, y) on the ``grid_hw`` (H, W) grid (an argmax; rounded and clipped
    into the grid otherwise). Truth: ``gt_px`` in original pixels mapped with
    :func:`zhu_to_grid` (``round(p * new / old)`` per axis). Distance: each axis multiplied by
    the factor before squaring, ``(((dx s)^2 + (dy s)^2) ** 0.5``, with ``s`` per grid pixel: head
    ``mm_per_px x H / grid_H`` mm (ISBI: 0.1 x 2400 / 512 = 0.46875 on both axes, Zhu's
    constant); hand ``wrist_mm / |gt_grid[a] - gt_grid[b]|`` with ``wrist_pair`` 0-based
    (default Zhu's 1-based 1 and 5); chest 1 (grid pixels). SDR: ``d <= t`` on these float
    distances, no tolerance (``d < t`` when ``strict``).

    Args:
        pred_grid: ``(N, L, 2)`` grid predictions.
        gt_px: ``(N, L, 2)`` ground truth in original pixels.
        image_hws: each image's original (H, W).
        grid_hw: the grid's (H, W) (Zhu's: :data:`ZHU_GRID_HW`).
        dataset: ``head``, ``hand`` or ``chest``.
        thresholds: SDR thresholds in the unit.
        wrist_pair: hand wrist pair, 0-based.
        mm_per_px: head spacing of the original images.
        wrist_mm: hand wrist width in mm.
        strict: SDR counts ``d < t`` (Payer et al.) instead of ``d <= t``.

    Returns:
        The SCORE dict (protocol ``zhu``).
    """
    err, unit = errors_zhu(pred_grid, gt_px, image_hws, grid_hw, dataset, wrist_pair,
                           mm_per_px, wrist_mm)
    return score_errors(err, thresholds, unit, "zhu", strict=strict)


def normalise_landmarks(landmarks_px: Any, image_hws: Sequence[tuple[int, int]]) -> np.ndarray:
    """Landmarks in pixels -> normalised [0, 1] coordinates (pixel-centre convention).

    Args:
        landmarks_px: ``(N, L, 2)`` (x, y) in original pixels.
        image_hws: each image's (H, W), N of them.

    Returns:
        ``(N, L, 2)`` float64 (u, v).

    Raises:
        XLMError: for another shape or a count of sizes other than N.
    """
    lm = landmark_array(landmarks_px, "landmarks")
    if len(image_hws) != lm.shape[0]:
        raise XLMError(f"{len(image_hws)} image sizes for {lm.shape[0]} images")
    return np.stack([normalise(p, hw) for p, hw in zip(lm, image_hws)])


def mean_shape_baseline(train_landmarks_norm: Any) -> np.ndarray:
    """The mean shape: the average training position of each landmark.

    Args:
        train_landmarks_norm: ``(N, L, 2)`` in normalised [0, 1] coordinates (see
            :func:`normalise_landmarks`).

    Returns:
        ``(L, 2)`` float64 in normalised coordinates.

    Raises:
        XLMError: for another shape or no training image.
    """
    lm = landmark_array(train_landmarks_norm, "training landmarks")
    if lm.shape[0] == 0:
        raise XLMError("the mean-shape baseline needs at least one training image")
    return lm.mean(axis=0)


def place_mean_shape(mean_shape_norm: Any, image_hws: Sequence[tuple[int, int]]) -> np.ndarray:
    """The mean shape placed on images of the given sizes.

    Args:
        mean_shape_norm: ``(L, 2)`` normalised coordinates.
        image_hws: ``[(H, W)] * N`` image sizes.

    Returns:
        ``(N, L, 2)`` float64 (x, y) in each image's pixels.

    Raises:
        XLMError: for a mean shape not shaped ``(L, 2)``.
    """
    shape = np.asarray(mean_shape_norm, dtype=np.float64)
    if shape.ndim != 2 or shape.shape[-1] != 2:
        raise XLMError(f"mean shape must be (L, 2), got shape {shape.shape}")
    return np.stack([denormalise(shape, hw) for hw in image_hws])


def baseline_ratio(score: dict) -> float:
    """A score's MRE over its mean-shape MRE: below 1 the model beats the mean shape.

    The demo's quality floor is 0.35.

    Args:
        score: a protocol SCORE, or a run's ``metrics.json`` (keys ``mre`` and
            ``mean_shape_mre``).

    Returns:
        ``mre / mean_shape_mre``; NaN when the score has no (or a zero) mean-shape MRE.
    """
    base = score.get("mean_shape_mre")
    return float(score["mre"]) / float(base) if base else float("nan")
