"""Paired bootstrap CI, Wilcoxon signed-rank and Holm, checked against scipy, a textbook and the
p-values of the hand-written Wilcoxon test that scipy.stats.wilcoxon replaced."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from xlm_core import XLMError
from xlm_core.report.stats import compare_paired, holm, paired_bootstrap_ci, wilcoxon_signed_rank


def _fixed_diff(n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(42)
    return rng.gamma(2.0, 0.3, n) - 0.4  # skewed, mean 0.2


def test_bootstrap_matches_scipy_percentile():
    d = _fixed_diff()
    low, high = paired_bootstrap_ci(d, n_boot=20000, ci=0.95, seed=1)
    ref = scipy_stats.bootstrap(
        (d,), np.mean, n_resamples=20000, confidence_level=0.95, method="percentile", rng=7
    ).confidence_interval
    se = d.std(ddof=1) / np.sqrt(d.size)
    # two Monte Carlo estimates of the same quantiles: agree within a small part of the SE
    assert low == pytest.approx(ref.low, abs=0.15 * se)
    assert high == pytest.approx(ref.high, abs=0.15 * se)
    assert low < d.mean() < high
    assert paired_bootstrap_ci(d, n_boot=2000, seed=3) == paired_bootstrap_ci(
        d, n_boot=2000, seed=3
    )


def test_wilcoxon_exact_small_sample_matches_scipy():
    a = np.array([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30, 2.01, 1.11, 0.93])
    b = np.array([0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29, 1.71, 1.20, 0.70])
    p = wilcoxon_signed_rank(a, b)
    assert p == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue, rel=1e-9)
    rng = np.random.default_rng(5)
    x, y = rng.normal(1.0, 1.0, 40), rng.normal(0.8, 1.0, 40)
    assert wilcoxon_signed_rank(x, y) == pytest.approx(scipy_stats.wilcoxon(x, y).pvalue, rel=1e-9)
    assert wilcoxon_signed_rank(y, x) == pytest.approx(wilcoxon_signed_rank(x, y))


def test_wilcoxon_normal_approximation_with_ties_and_zeros_matches_scipy():
    rng = np.random.default_rng(6)
    x = np.round(rng.normal(2.0, 1.0, 80), 1)
    y = np.round(rng.normal(1.8, 1.0, 80), 1)
    y[:5] = x[:5]  # zero differences, dropped
    ref = scipy_stats.wilcoxon(x, y, method="asymptotic", correction=False).pvalue
    assert wilcoxon_signed_rank(x, y) == pytest.approx(ref, rel=1e-9)
    assert wilcoxon_signed_rank(x, x) == 1.0


def _per_image_mre_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-image MRE (mm) of two runs on the same test images, as the book's tables pair them."""
    rng = np.random.default_rng(2015)
    base = rng.gamma(4.0, 0.45, 150)
    pairs = {"n150 continuous": (base - 0.08 + rng.normal(0, 0.25, 150), base)}
    # errors on a 0.1 mm grid: ties, and 20 images where both runs err alike (zero differences)
    pairs["n150 ties, zeros"] = (np.round(base + rng.normal(0, 0.3, 150), 1), np.round(base, 1))
    base30 = rng.gamma(4.0, 0.45, 30)
    pairs["n30 exact"] = (base30 + rng.normal(0.1, 0.2, 30), base30)
    base12 = np.round(rng.gamma(4.0, 0.45, 12), 1)
    pairs["n12 ties, zeros"] = (np.round(base12 + rng.normal(0.15, 0.2, 12), 1), base12)
    base60 = rng.gamma(4.0, 0.45, 60)
    pairs["n60 continuous"] = (base60 + rng.normal(0.05, 0.2, 60), base60)
    return pairs


#: p-values of the hand-written test (numpy: exact null distribution for n <= 50 without ties or
#: zeros, else the normal approximation with the tie correction, no continuity correction) that
#: scipy.stats.wilcoxon replaced, computed once with it on the pairs above
HAND_WRITTEN_P = {
    "n150 continuous": 2.0963558321651758e-05,
    "n150 ties, zeros": 0.5531498923712671,
    "n30 exact": 0.026228994131088257,
    "n12 ties, zeros": 0.05604677300770546,
    "n60 continuous": 0.3203122578191264,
}


@pytest.mark.parametrize("case", sorted(HAND_WRITTEN_P))
def test_wilcoxon_p_values_are_those_of_the_hand_written_test(case):
    a, b = _per_image_mre_pairs()[case]
    assert wilcoxon_signed_rank(a, b) == pytest.approx(HAND_WRITTEN_P[case], rel=1e-12)


def test_wilcoxon_keeps_the_normal_approximation_where_scipy_auto_would_permute():
    # n <= 13 with ties or zeros: scipy's method="auto" runs an exact permutation test (0.072
    # here); the book's p-values there have come from the normal approximation (0.056)
    a, b = _per_image_mre_pairs()["n12 ties, zeros"]
    assert scipy_stats.wilcoxon(a, b).pvalue == pytest.approx(0.072265625)
    assert wilcoxon_signed_rank(a, b) == pytest.approx(0.05604677300770546, rel=1e-12)


def test_holm_textbook_example():
    # m = 4: sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04,
    # then the running maximum: 0.02, 0.03, 0.06, 0.06 (back in input order below)
    adj = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    with pytest.raises(XLMError):
        holm([0.1, 1.5])


def test_compare_paired():
    rng = np.random.default_rng(8)
    b = rng.gamma(3.0, 0.5, 50)
    a = b - 0.3 + rng.normal(0, 0.1, 50)  # A clearly better
    out = compare_paired(a, b, n_boot=2000)
    assert out["delta_mre"] == pytest.approx(np.mean(a - b))
    assert out["ci_low"] < out["delta_mre"] < out["ci_high"] < 0
    assert out["p_value"] < 1e-6 and out["n_images"] == 50
    with pytest.raises(XLMError):
        compare_paired(a, b[:-1])
