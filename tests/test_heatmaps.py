"""Gaussian targets (local window) and decoding (argmax, sub-pixel)."""

from __future__ import annotations

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.heatmaps import (
    decode_argmax,
    decode_softargmax_local,
    decode_subpixel,
    full_image_heatmaps,
    gaussian_heatmaps,
)
from xlm_core.registry import softargmax_radius

GRID_HW = (48, 37)  # non-square: H != W


def _landmarks(rng: np.random.Generator, n: int, hw=GRID_HW) -> np.ndarray:
    h, w = hw
    xy = np.column_stack([rng.uniform(-0.5, w - 0.5, n), rng.uniform(-0.5, h - 0.5, n)])
    k = n // 8  # near every border and in two corners
    xy[:k, 0] = rng.uniform(-0.5, 0.5, k)
    xy[k : 2 * k, 0] = rng.uniform(w - 1.5, w - 0.5, k)
    xy[2 * k : 3 * k, 1] = rng.uniform(-0.5, 0.5, k)
    xy[3 * k : 4 * k, 1] = rng.uniform(h - 1.5, h - 0.5, k)
    xy[4 * k : 5 * k] = np.column_stack(
        [rng.uniform(-0.5, 0.5, k), rng.uniform(h - 1.5, h - 0.5, k)]
    )
    xy[5 * k : 6 * k] = np.column_stack(
        [rng.uniform(w - 1.5, w - 0.5, k), rng.uniform(-0.5, 0.5, k)]
    )
    return xy


def test_peak_follows_xy_on_non_square_grid():
    xy = np.array([[30.0, 5.0], [2.0, 40.0]])  # x beyond H would not fit if transposed
    hm = gaussian_heatmaps(xy, GRID_HW, sigma=2.0)
    assert hm.shape == (2, 48, 37) and hm.dtype == np.float32
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (5, 30)  # (row = y, col = x)
    assert np.unravel_index(hm[1].argmax(), hm[1].shape) == (40, 2)
    assert hm[0, 5, 30] == pytest.approx(1.0)
    np.testing.assert_array_equal(decode_argmax(hm), xy)


@pytest.mark.parametrize("sigma", [1.0, 1.7, 2.0, 3.5, 5.0])
def test_local_window_equals_full_image_reference(sigma):
    rng = np.random.default_rng(1)
    xy = _landmarks(rng, 64)
    local = gaussian_heatmaps(xy, GRID_HW, sigma)
    ref = full_image_heatmaps(xy, GRID_HW, sigma)
    np.testing.assert_allclose(local, ref, rtol=0, atol=1e-6)
    # truncation only removes the tail beyond truncate * sigma
    untruncated = full_image_heatmaps(xy, GRID_HW, sigma, truncate=None)
    assert np.abs(untruncated - local).max() <= np.exp(-(3.0**2) / 2) + 1e-6


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.5, 5.0])
def test_decoders_on_noise_free_gaussians(sigma):
    rng = np.random.default_rng(int(sigma * 10))
    xy = _landmarks(rng, 200)
    hm = gaussian_heatmaps(xy, GRID_HW, sigma)
    sub = decode_subpixel(hm)
    arg = decode_argmax(hm)
    assert sub.shape == (200, 2)
    assert np.abs(sub - xy).max() < 0.05
    assert np.abs(arg - xy).max() <= 0.5 + 1e-9
    assert np.array_equal(arg, np.round(arg))


def test_outside_landmarks_give_zero_maps_and_border_clipping():
    h, w = GRID_HW
    xy = np.array([[-0.6, 10.0], [10.0, h - 0.4], [np.nan, 3.0], [-0.5, -0.5], [w + 3.0, 2.0]])
    hm = gaussian_heatmaps(xy, GRID_HW, sigma=2.0)
    assert hm[0].max() == 0 and hm[1].max() == 0 and hm[2].max() == 0 and hm[4].max() == 0
    assert hm[3, 0, 0] == pytest.approx(np.exp(-0.5 / 8.0))  # clipped, not dropped


def test_batched_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    xy = np.stack([_landmarks(rng, 16) for _ in range(3)])  # (B, L, 2)
    hm = gaussian_heatmaps(xy, GRID_HW, sigma=2.0)
    assert hm.shape == (3, 16, 48, 37)
    np.testing.assert_array_equal(hm[1], gaussian_heatmaps(xy[1], GRID_HW, sigma=2.0))
    t = torch.from_numpy(hm)
    sub_t, arg_t = decode_subpixel(t), decode_argmax(t)
    assert (
        isinstance(sub_t, torch.Tensor)
        and sub_t.shape == (3, 16, 2)
        and sub_t.dtype == torch.float32
    )
    np.testing.assert_allclose(sub_t.numpy(), decode_subpixel(hm), atol=1e-5)
    np.testing.assert_array_equal(arg_t.numpy(), decode_argmax(hm))
    assert np.abs(sub_t.numpy() - xy).max() < 0.05


def test_decode_degenerate_maps():
    flat = np.zeros((2, 5, 6), dtype=np.float32)  # all-zero map: stays at the argmax (0, 0)
    flat[1] = -1.0
    np.testing.assert_array_equal(decode_subpixel(flat), [[0, 0], [0, 0]])
    tiny = np.zeros((1, 2, 2))
    tiny[0, 1, 0] = 1.0
    np.testing.assert_array_equal(decode_subpixel(tiny), [[0.0, 1.0]])
    # a noisy peak (model output) stays within one pixel of its argmax and inside the grid
    rng = np.random.default_rng(4)
    noisy = gaussian_heatmaps(np.array([[0.2, 20.0]]), GRID_HW, 2.0) + rng.normal(
        0, 0.05, (1, *GRID_HW)
    )
    out = decode_subpixel(noisy)
    assert np.abs(out - decode_argmax(noisy)).max() <= 1.0 and out[0, 0] >= -0.5


def test_bad_arguments():
    with pytest.raises(XLMError):
        gaussian_heatmaps(np.zeros((3, 3)), GRID_HW, 2.0)
    with pytest.raises(XLMError):
        gaussian_heatmaps(np.zeros((3, 2)), GRID_HW, 0.0)
    with pytest.raises(XLMError):
        decode_argmax(np.zeros(5))


# --------------------------------------------------------------------------- window soft-argmax


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0, 5.0])
def test_softargmax_window_holds_the_target_disc_and_recovers_the_landmark(sigma):
    r = softargmax_radius(sigma)
    assert r == int(np.ceil(3.0 * sigma + 0.5))
    rng = np.random.default_rng(int(sigma * 10))
    h, w = 96, 128
    xy = np.c_[rng.uniform(r + 1, w - r - 2, 200), rng.uniform(r + 1, h - r - 2, 200)]
    maps = gaussian_heatmaps(xy, (h, w), sigma)
    out = decode_softargmax_local(maps, r)
    assert out.shape == (200, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out, xy, atol=0.015)
    # a window smaller than the disc is biased towards the argmax pixel
    assert np.abs(decode_softargmax_local(maps, 1) - xy).max() > 0.05


def test_softargmax_falls_back_to_the_newton_step_where_the_window_crosses_the_border():
    xy = np.array([[2.3, 30.0], [60.6, 31.4], [30.2, 1.1], [31.7, 30.2]])  # left, right, top, inside
    maps = gaussian_heatmaps(xy, (64, 64), 2.0)
    out = decode_softargmax_local(maps, softargmax_radius(2.0))
    np.testing.assert_allclose(out[:3], decode_subpixel(maps)[:3])
    np.testing.assert_allclose(out, xy, atol=0.01)
    # the cut window mean would have been pulled inwards
    cut = maps[0].copy()
    ys, xs = np.mgrid[0:64, 0:64]
    window = (np.abs(xs - 2) <= 7) & (np.abs(ys - 30) <= 7)
    assert (cut * window * xs).sum() / (cut * window).sum() - 2.3 > 0.1


def test_softargmax_torch_matches_numpy_and_an_empty_map_decodes_to_its_argmax():
    import torch

    rng = np.random.default_rng(3)
    maps = rng.random((2, 3, 20, 24)) ** 8
    maps[1, 2] = 0.0
    out_np = decode_softargmax_local(maps, 3)
    out_t = decode_softargmax_local(torch.from_numpy(maps).float(), 3)
    assert out_t.dtype == torch.float32 and tuple(out_t.shape) == (2, 3, 2)
    np.testing.assert_allclose(out_t.numpy(), out_np, atol=1e-4)
    np.testing.assert_allclose(out_np[1, 2], decode_argmax(maps[1, 2]))
    with pytest.raises(XLMError, match="radius"):
        decode_softargmax_local(maps, -1)
