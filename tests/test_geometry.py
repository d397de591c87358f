"""Original image <-> resized grid coordinates (pixel-centre convention, x with W, y with H)."""

from __future__ import annotations

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.geometry import denormalise, from_grid, grid_scale_xy, normalise, to_grid

# non-square: a 2400 x 1935 (H x W) cephalogram onto a 512 x 416 (H x W) grid
IMAGE_HW = (2400, 1935)
GRID_HW = (512, 416)


def test_known_answers_non_square():
    sx, sy = 416 / 1935, 512 / 2400
    assert grid_scale_xy(IMAGE_HW, GRID_HW) == pytest.approx((sx, sy))
    xy = np.array([[-0.5, -0.5], [1934.5, 2399.5], [0.0, 0.0], [1000.0, 300.0]])
    expected = np.array(
        [
            [-0.5, -0.5],  # the image's top-left edge is the grid's top-left edge
            [415.5, 511.5],  # bottom-right edge -> bottom-right edge
            [0.5 * sx - 0.5, 0.5 * sy - 0.5],
            [1000.5 * sx - 0.5, 300.5 * sy - 0.5],
        ]
    )
    np.testing.assert_allclose(to_grid(xy, IMAGE_HW, GRID_HW), expected, atol=1e-12)


def test_axes_not_swapped():
    # a point on the image centre row stays on the grid centre row; x uses widths only
    centre = np.array([(1935 - 1) / 2, (2400 - 1) / 2])
    np.testing.assert_allclose(to_grid(centre, IMAGE_HW, GRID_HW), [(416 - 1) / 2, (512 - 1) / 2])
    g = to_grid(np.array([[10.0, 10.0]]), (100, 50), (10, 10))  # x shrinks by 5, y by 10
    np.testing.assert_allclose(g, [[(10.5 / 5) - 0.5, (10.5 / 10) - 0.5]])


def test_integer_factor_matches_block_average():
    # 2x downsampling by averaging 2x2 blocks (what cv2.INTER_AREA does): the centre of
    # block (0, 0) is at original (0.5, 0.5) and lands on grid pixel (0, 0).
    np.testing.assert_allclose(to_grid(np.array([0.5, 0.5]), (8, 6), (4, 3)), [0.0, 0.0])
    np.testing.assert_allclose(to_grid(np.array([2.5, 6.5]), (8, 6), (4, 3)), [1.0, 3.0])


def test_round_trip_exact():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.5, 1934.5, size=(7, 19, 2))
    back = from_grid(to_grid(xy, IMAGE_HW, GRID_HW), IMAGE_HW, GRID_HW)
    np.testing.assert_allclose(back, xy, rtol=0, atol=1e-9)
    np.testing.assert_allclose(denormalise(normalise(xy, IMAGE_HW), IMAGE_HW), xy, atol=1e-9)
    np.testing.assert_allclose(normalise(np.array([-0.5, 2399.5]), (2400, 1)), [0.0, 1.0])


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    xy = torch.tensor([[1000.0, 300.0]])
    out = to_grid(xy, IMAGE_HW, GRID_HW)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), to_grid(xy.numpy(), IMAGE_HW, GRID_HW), rtol=1e-6)


def test_bad_input():
    with pytest.raises(XLMError):
        to_grid(np.zeros((3, 3)), IMAGE_HW, GRID_HW)
    with pytest.raises(XLMError):
        to_grid(np.zeros((3, 2)), (0, 10), GRID_HW)
