"""How well do two human experts agree? The floor under any head (or ceph) MRE.

The ISBI 2015 head ground truth is the mean of two annotators (senior, junior). Scoring each
annotator against that mean, and one against the other, with the same metrics as the
models gives the inter-observer limit the book quotes next to the model errors.

Note: an annotator's error against the mean of both is exactly half the senior-junior
distance, so "senior vs mean" and "junior vs mean" are identical rows by construction.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xlm_core import XLMError
from xlm_core.metrics import DEFAULT_THRESHOLDS, HEAD_MM_PER_PX, default_scale, evaluate_clean

if TYPE_CHECKING:
    from xlm_core.datasets.base import Scale

HEAD_LANDMARKS = 19


def load_payer_mm_csv(
    path: str | os.PathLike, mm_per_px: float = HEAD_MM_PER_PX, n_landmarks: int = HEAD_LANDMARKS
) -> tuple[list[str], np.ndarray]:
    """Read Payer et al.'s head setup CSV (``id,x1,y1,...``, millimetres, no header).

    Returns ``(ids, landmarks_px (N, L, 2) float64)``, pixels = mm / ``mm_per_px``, rounded to
    1e-6 px to drop float noise (the ISBI originals are integer pixels, so 83.5 mm -> 835.0).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise XLMError(f"{path}: cannot read ({exc})") from exc
    ids: list[str] = []
    rows: list[list[float]] = []
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 1 + 2 * n_landmarks:
            raise XLMError(
                f"{path}: line {line_no}: expected id + {2 * n_landmarks} coordinates,"
                f" got {len(row) - 1}"
            )
        try:
            values = [float(v) for v in row[1:]]
        except ValueError:
            raise XLMError(f"{path}: line {line_no}: non-numeric coordinate") from None
        if not np.isfinite(values).all():
            raise XLMError(f"{path}: line {line_no}: non-finite coordinate")
        ids.append(row[0].strip())
        rows.append(values)
    if not rows:
        raise XLMError(f"{path}: no rows")
    if len(set(ids)) != len(ids):
        raise XLMError(f"{path}: duplicate image ids")
    px = np.round(np.array(rows, dtype=np.float64).reshape(-1, n_landmarks, 2) / mm_per_px, 6)
    return ids, px


def human_limit_table(
    senior_px: Any,
    junior_px: Any,
    scale: Scale | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS["head"],
    names: tuple[str, str] = ("senior", "junior"),
) -> list[dict[str, Any]]:
    """Inter-observer agreement as SCORE rows, from two ``(N, L, 2)`` (x, y) pixel arrays.

    Rows (``"comparison"`` key): ``senior vs mean``, ``junior vs mean``, ``senior vs junior``
    (the junior annotation scored against the senior one as ground truth), with the readers
    called ``names`` (e.g. ``("mollabashi", "farhadifar")`` on ceph). ``scale`` defaults
    to the head's 0.1 mm per pixel. Each row is the ``clean`` SCORE dict plus ``comparison``.
    """
    senior = np.asarray(senior_px, dtype=np.float64)
    junior = np.asarray(junior_px, dtype=np.float64)
    if senior.shape != junior.shape or senior.ndim != 3 or senior.shape[-1] != 2:
        raise XLMError(
            "annotations must be two (N, L, 2) arrays of one shape,"
            f" got {senior.shape} and {junior.shape}"
        )
    scale = scale or default_scale("head")
    mean = (senior + junior) / 2.0
    table = []
    a, b = names
    for name, pred, gt in (
        (f"{a} vs mean", senior, mean),
        (f"{b} vs mean", junior, mean),
        (f"{a} vs {b}", junior, senior),
    ):
        row = {"comparison": name}
        row.update(evaluate_clean(pred, gt, scale, thresholds))
        table.append(row)
    return table


def human_limit_from_payer(
    senior_csv: str | os.PathLike,
    junior_csv: str | os.PathLike,
    ids: Sequence[str] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS["head"],
) -> list[dict[str, Any]]:
    """:func:`human_limit_table` on Payer's two mm CSVs, restricted to ``ids`` (test images)."""
    s_ids, senior = load_payer_mm_csv(senior_csv)
    j_ids, junior = load_payer_mm_csv(junior_csv)
    if s_ids != j_ids:
        raise XLMError(f"{senior_csv} and {junior_csv} list different images")
    if ids is not None:
        index = {i: k for k, i in enumerate(s_ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            raise XLMError(f"{senior_csv}: image ids not found: {missing[:10]}")
        rows = [index[i] for i in ids]
        senior, junior = senior[rows], junior[rows]
    return human_limit_table(senior, junior, thresholds=thresholds)
