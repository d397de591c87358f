"""xlm_core.losses: each loss is minimised by its target, has finite gradients, and decodes
a known peak on a non-square grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlm_core import XLMError
from xlm_core.heatmaps import gaussian_heatmaps
from xlm_core.losses import decode_for_loss, get_loss, loss_activation
from xlm_core.registry import LOSS_NAMES, decoder_name

GRID_HW = (24, 40)  # non-square: H != W
# (B=2, L=3) landmarks (x, y) in grid px, sub-pixel, one near the border
LANDMARKS_XY = np.array(
    [
        [[10.4, 5.7], [30.2, 20.9], [3.0, 17.25]],
        [[35.6, 3.3], [20.0, 12.0], [7.8, 21.4]],
    ]
)


@pytest.fixture(scope="module")
def target() -> torch.Tensor:
    return torch.from_numpy(gaussian_heatmaps(LANDMARKS_XY, GRID_HW, sigma=2.0))


def _target_like_logits(name: str, target: torch.Tensor) -> torch.Tensor:
    """Logits at (or next to) each loss's optimum for this target."""
    if name == "mse":
        return target.clone()
    if name == "spatial_ce":
        return torch.log(target.clamp(min=1e-8))
    return torch.logit(target.clamp(1e-4, 1 - 1e-4))  # bce, awing: sigmoid(logits) == target


def test_names_and_unknown_loss():
    assert set(LOSS_NAMES) == {"mse", "bce", "spatial_ce", "awing"}
    with pytest.raises(XLMError, match="mse, bce, spatial_ce, awing"):
        get_loss("l1")
    with pytest.raises(XLMError, match="allowed"):
        decode_for_loss("dice", torch.zeros(1, 1, 4, 4), sigma=2.0)


@pytest.mark.parametrize("name", ["mse", "bce", "spatial_ce", "awing"])
def test_target_like_logits_beat_random_and_gradients_are_finite(name, target):
    loss = get_loss(name)
    best = loss(_target_like_logits(name, target), target)
    torch.manual_seed(0)
    for scale in (0.1, 1.0, 5.0):
        logits = (torch.randn_like(target) * scale).requires_grad_(True)
        value = loss(logits, target)
        value.backward()
        assert value.ndim == 0 and torch.isfinite(value)
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
        assert float(best) < float(value.detach()), (name, scale)
    # a small step away from the optimum does not lower the loss (it is a minimum)
    opt = _target_like_logits(name, target).requires_grad_(True)
    loss(opt, target).backward()
    nudged = opt.detach() + 0.05 * torch.randn_like(target)
    assert float(loss(nudged, target)) >= float(best) - 1e-6
    # the optimum's own gradient is (close to) zero
    assert float(opt.grad.abs().max()) < 1e-2


@pytest.mark.parametrize("name", ["mse", "bce", "spatial_ce", "awing"])
def test_gradient_at_a_perfect_prediction_is_finite(name, target):
    """awing has |y - y_hat|^a; mse exactly at the target: no NaN."""
    logits = _target_like_logits(name, target).requires_grad_(True)
    get_loss(name)(logits, target).backward()
    assert torch.isfinite(logits.grad).all()


def test_spatial_ce_skips_landmarks_outside_the_image(target):
    loss = get_loss("spatial_ce")
    empty = target.clone()
    empty[0, 1] = 0  # landmark outside the image: all-zero target
    logits = torch.randn_like(target)
    kept = [(b, l) for b in range(2) for l in range(3) if (b, l) != (0, 1)]
    per_map = [
        float(loss(logits[b : b + 1, l : l + 1], target[b : b + 1, l : l + 1])) for b, l in kept
    ]
    assert float(loss(logits, empty)) == pytest.approx(np.mean(per_map), rel=1e-5)
    zero = torch.zeros_like(target)
    out = loss(logits.requires_grad_(True), zero)
    assert float(out.detach()) == 0.0
    out.backward()
    assert torch.isfinite(logits.grad).all()


def test_awing_matches_the_paper_formula_at_two_points():
    """Wang et al. 2019 eq. (7): small errors log branch, large errors linear branch."""
    loss = get_loss("awing")
    y = torch.tensor([[[[1.0]]]])
    for y_hat in (0.8, 0.2):  # |d| = 0.2 < theta = 0.5, |d| = 0.8 > theta
        logits = torch.logit(torch.tensor([[[[y_hat]]]]))
        d, a = abs(1.0 - y_hat), 2.1 - 1.0
        if d < 0.5:
            expected = 14 * np.log1p(d**a)
        else:
            big_a = 14 * (1 / (1 + 0.5**a)) * a * 0.5 ** (a - 1)
            expected = big_a * d - (0.5 * big_a - 14 * np.log1p(0.5**a))
        assert float(loss(logits, y)) == pytest.approx(expected, rel=1e-4)


def test_shape_mismatch_is_an_error(target):
    with pytest.raises(XLMError, match="same shape"):
        get_loss("mse")(target[:, :2], target)


@pytest.mark.parametrize("name", ["mse", "bce", "spatial_ce", "awing"])
def test_decode_for_loss_recovers_the_peak_on_a_non_square_grid(name, target):
    logits = _target_like_logits(name, target)
    xy = decode_for_loss(name, logits, sigma=2.0)
    assert tuple(xy.shape) == (2, 3, 2) and xy.dtype == torch.float32
    # spatial_ce: the window mean (radius 7 at sigma 2), exact where the window fits in the grid
    # (one of these six landmarks: (20, 12)); nearer the border the largest centred window that
    # fits ("symmetric"), which cuts an ideal Gaussian's tails unevenly: within 0.3 px there
    err = np.abs(xy.numpy() - np.asarray(LANDMARKS_XY, dtype=np.float32))
    if name == "spatial_ce":
        inside = np.all(np.asarray(LANDMARKS_XY) == (20, 12), axis=-1)
        assert inside.sum() == 1  # (20, 12) in the second image
        assert err[inside].max() < 0.02 and err.max() < 0.3
    else:
        assert err.max() < 0.02
    # integer (x, y) order, not (row, col): a peak at x=33, y=4 on the 24 x 40 grid
    single = torch.full((1, 1, 24, 40), -5.0)
    single[0, 0, 4, 33] = 5.0
    np.testing.assert_allclose(decode_for_loss(name, single, sigma=2.0)[0, 0].numpy(), [33, 4], atol=0.5)


def test_decode_for_loss_is_invariant_to_a_logit_offset_for_spatial_ce(target):
    logits = _target_like_logits("spatial_ce", target)
    torch.testing.assert_close(
        decode_for_loss("spatial_ce", logits, sigma=2.0), decode_for_loss("spatial_ce", logits + 7.0, sigma=2.0)
    )


def test_spatial_ce_decodes_a_wide_softmax_by_its_mean_and_the_others_by_their_peak():
    # a lopsided trained-like map: peak at x=10, a shoulder at x=12. The window mean moves
    # towards the shoulder (the mass); the Newton step stays within a pixel of the peak.
    logits = torch.full((1, 1, 21, 21), -30.0)
    logits[0, 0, 10, 10], logits[0, 0, 10, 12], logits[0, 0, 10, 11] = 0.0, -0.2, -1.0
    p = torch.softmax(logits.flatten(), 0).view(21, 21)
    expected_x = float((p.sum(0) * torch.arange(21.0)).sum())
    x_ce = float(decode_for_loss("spatial_ce", logits, sigma=1.5)[0, 0, 0])
    assert x_ce == pytest.approx(expected_x, abs=1e-5) and x_ce > 10.8
    assert decoder_name("spatial_ce", 1.5) == "softargmax-r5-sym"
    assert {decoder_name(n, 1.5) for n in ("mse", "bce", "awing")} == {"newton"}
    x_mse = float(decode_for_loss("mse", torch.sigmoid(logits), sigma=1.5)[0, 0, 0])
    assert 9.0 <= x_mse <= 11.0


def test_loss_activation_is_the_map_each_loss_fits(target):
    z = torch.randn(1, 2, 6, 5)
    torch.testing.assert_close(loss_activation("mse", z), z)
    torch.testing.assert_close(loss_activation("bce", z), torch.sigmoid(z))
    p = loss_activation("spatial_ce", z)
    torch.testing.assert_close(p.sum((-2, -1)), torch.ones(1, 2))
