"""Paired statistics for "is run A better than run B on the same test images?".

The unit of replication is the test image: each run gives a per-image MRE
(:func:`xlm_core.metrics.per_image_mre`), and two runs scored on the same images are
compared pairwise.

- :func:`paired_bootstrap_ci`: percentile bootstrap confidence interval of the mean
  difference (resampling images with replacement).
- :func:`wilcoxon_signed_rank`: two-sided Wilcoxon signed-rank test
  (:func:`scipy.stats.wilcoxon`): zero differences dropped (Wilcoxon's convention), average
  ranks for ties; the exact null distribution when ``n <= 50`` and there are no ties or zeros,
  else the normal approximation with the tie correction and no continuity correction.
- :func:`holm`: Holm-Bonferroni adjusted p-values for a family of comparisons.
- :func:`compare_paired`: all of the above for one pair of runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

from xlm_core import XLMError


def _vector(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise XLMError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise XLMError(f"{name} contains non-finite values")
    return arr


def paired_bootstrap_ci(
    diff: Any, n_boot: int = 10000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI ``(low, high)`` of the mean of paired differences ``diff`` (n,)."""
    d = _vector(diff, "paired differences")
    if not 0 < ci < 1:
        raise XLMError(f"confidence level must be in (0, 1), got {ci}")
    if n_boot < 1:
        raise XLMError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    n = d.size
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)  # bounded memory for the (chunk, n) index block
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = d[idx].mean(axis=1)
    alpha = (1.0 - ci) / 2.0
    low, high = np.percentile(means, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def wilcoxon_signed_rank(a: Any, b: Any) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on paired samples ``a``, ``b`` (n,).

    Returns 1.0 when every difference is zero. The method is pinned rather than scipy's
    ``"auto"``, which runs a permutation test for ``n <= 13`` with ties or zeros: there the
    book's p-values have always come from the normal approximation.
    """
    x = _vector(a, "first sample")
    y = _vector(b, "second sample")
    if x.shape != y.shape:
        raise XLMError(f"paired samples differ in length: {x.size} vs {y.size}")
    d = x - y
    if not d.any():
        return 1.0
    magnitudes = np.abs(d)
    exact = d.size <= 50 and magnitudes.all() and np.unique(magnitudes).size == d.size
    result = wilcoxon(d, zero_method="wilcox", correction=False,
                      method="exact" if exact else "asymptotic")
    return float(result.pvalue)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order: ``(m,)`` -> ``(m,)``.

    Sorted ascending, ``p_(i)`` (1-based ``i``) becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise XLMError(f"p-values must be 1-D, got shape {p.shape}")
    if p.size and ((p < 0) | (p > 1) | ~np.isfinite(p)).any():
        raise XLMError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="mergesort")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def compare_paired(
    per_image_a: Any, per_image_b: Any, n_boot: int = 10000, ci: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Compare two runs on the same images (per-image MRE ``(n,)`` each, same order).

    Returns ``{"delta_mre": mean(a - b), "ci_low", "ci_high", "p_value", "n_images"}``;
    a negative ``delta_mre`` means A has the smaller error.
    """
    a = _vector(per_image_a, "per-image MRE of A")
    b = _vector(per_image_b, "per-image MRE of B")
    if a.shape != b.shape:
        raise XLMError(f"per-image MRE arrays differ in length: {a.size} vs {b.size}")
    low, high = paired_bootstrap_ci(a - b, n_boot=n_boot, ci=ci, seed=seed)
    return {
        "delta_mre": float(np.mean(a - b)),
        "ci_low": low,
        "ci_high": high,
        "p_value": wilcoxon_signed_rank(a, b),
        "n_images": int(a.size),
    }
