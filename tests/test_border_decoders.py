"""The window soft-argmax's rules at the grid's border (``decode_softargmax_local(border=...)``),
each against its definition computed here by hand."""

from __future__ import annotations

import numpy as np
import pytest

from xlm_core import XLMError
from xlm_core.heatmaps import decode_softargmax_local, decode_subpixel


def _maps() -> np.ndarray:
    """Two skewed blobs on a 12 x 10 (H x W) grid: one peaked 1 px from the left edge, one in
    the middle; asymmetric, so every rule gives a different answer at the border."""
    y, x = np.mgrid[0:12, 0:10].astype(np.float64)
    left = np.exp(-((x - 1.2) ** 2) / 3.0 - ((y - 6.4) ** 2) / 2.0) + 0.3 * np.exp(-((x - 3) ** 2 + (y - 8) ** 2))
    mid = np.exp(-((x - 4.7) ** 2) / 2.0 - ((y - 5.6) ** 2) / 2.0)
    return np.stack([left, mid])


def _mean(m: np.ndarray, xs: slice, ys: slice) -> tuple[float, float]:
    y, x = np.mgrid[0 : m.shape[0], 0 : m.shape[1]].astype(np.float64)
    w = m[ys, xs]
    return float((w * x[ys, xs]).sum() / w.sum()), float((w * y[ys, xs]).sum() / w.sum())


def test_border_rules_by_definition() -> None:
    maps, r = _maps(), 2
    iy, ix = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert ix == 1 and ix < r  # the window would cross the left edge
    newton = decode_softargmax_local(maps, r, border="newton")
    clipped = decode_softargmax_local(maps, r, border="clipped")
    symmetric = decode_softargmax_local(maps, r, border="symmetric")
    np.testing.assert_allclose(newton[0], decode_subpixel(maps)[0])
    np.testing.assert_allclose(clipped[0], _mean(maps[0], slice(0, ix + r + 1), slice(iy - r, iy + r + 1)))
    # symmetric: x half-width min(r, 1 px to the edge) = 1, y keeps r
    np.testing.assert_allclose(symmetric[0], _mean(maps[0], slice(0, ix + 2), slice(iy - r, iy + r + 1)))
    assert len({tuple(np.round(v[0], 9)) for v in (newton, clipped, symmetric)}) == 3
    # inside the grid the three rules are the same window mean
    iy, ix = np.unravel_index(maps[1].argmax(), maps[1].shape)
    inside = _mean(maps[1], slice(ix - r, ix + r + 1), slice(iy - r, iy + r + 1))
    for out in (newton, clipped, symmetric):
        np.testing.assert_allclose(out[1], inside)


def test_symmetric_on_the_edge_keeps_the_integer_axis() -> None:
    m = np.zeros((1, 9, 9))
    m[0, 4, 0], m[0, 4, 1], m[0, 3, 0], m[0, 5, 0] = 1.0, 0.5, 0.2, 0.4
    out = decode_softargmax_local(m, 3, border="symmetric")[0]
    assert out[0] == 0.0  # no room to the left: x stays on the argmax column
    assert out[1] == pytest.approx((3 * 0.2 + 4 * 1.0 + 5 * 0.4) / 1.6)


def test_unknown_border_rule() -> None:
    with pytest.raises(XLMError, match="border rule"):
        decode_softargmax_local(_maps(), 2, border="mirror")


def test_spatial_ce_decodes_the_border_with_the_symmetric_window() -> None:
    """The rule kept after benchmarks/border_decoders.py (see xlm_core.losses): symmetric."""
    import torch

    from xlm_core.losses import decode_for_loss
    from xlm_core.registry import decoder_name, softargmax_radius

    logits = torch.log(torch.from_numpy(_maps()) + 1e-12)[None]
    out = decode_for_loss("spatial_ce", logits, sigma=0.4)  # radius 2
    maps = torch.softmax(logits.flatten(-2), -1).view_as(logits).double().numpy()
    r = softargmax_radius(0.4)
    np.testing.assert_allclose(out.numpy(), decode_softargmax_local(maps, r, border="symmetric"),
                               atol=1e-5)
    assert decoder_name("spatial_ce", 0.4) == f"softargmax-r{r}-sym"
