"""Coordinates between an original image and a resized grid (heatmap / network input).

Convention: pixel centres, as ``cv2.resize`` (and PIL, ``torch.nn.functional.interpolate``
with ``align_corners=False``). Pixel ``i`` covers the interval ``[i - 0.5, i + 0.5]``, so the
image spans ``[-0.5, W - 0.5]`` in x and ``[-0.5, H - 0.5]`` in y, and a resize maps edges to
edges::

    x_grid = (x + 0.5) * W_grid / W - 0.5
    y_grid = (y + 0.5) * H_grid / H - 0.5

x scales with the widths and y with the heights (never the other way round: on a non-square
image that swap is a silent error, trap 3/6 in ``docs/protocols.md``).

Coordinates are ``(..., 2)`` arrays of ``(x, y)``; sizes are ``(H, W)`` tuples. Normalised
coordinates (``normalise`` / ``denormalise``) are the same mapping onto a ``1 x 1`` extent:
``u = (x + 0.5) / W`` so that 0 is the left edge and 1 the right edge of the image.

Works on numpy arrays and on torch tensors (returned as the same kind); this module does
not import torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xlm_core import XLMError


def _check_hw(hw: Any, name: str) -> tuple[float, float]:
    try:
        h, w = (float(v) for v in hw)
    except (TypeError, ValueError) as exc:
        raise XLMError(f"{name} must be (H, W), got {hw!r}") from exc
    if not (h > 0 and w > 0):
        raise XLMError(f"{name} must be positive (H, W), got {hw!r}")
    return h, w


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _affine(xy: Any, scale_xy: tuple[float, float], shift_xy: tuple[float, float]) -> Any:
    """``xy * scale + shift`` per axis on a ``(..., 2)`` array or tensor, float64 for numpy."""
    if _is_torch(xy):
        if not xy.is_floating_point():
            xy = xy.float()
        scale = xy.new_tensor(scale_xy)
        shift = xy.new_tensor(shift_xy)
        if xy.shape[-1:] != (2,):
            raise XLMError(f"coordinates must be (..., 2) (x, y), got shape {tuple(xy.shape)}")
        return xy * scale + shift
    arr = np.asarray(xy, dtype=np.float64)
    if arr.shape[-1:] != (2,):
        raise XLMError(f"coordinates must be (..., 2) (x, y), got shape {arr.shape}")
    return arr * np.asarray(scale_xy) + np.asarray(shift_xy)


def grid_scale_xy(image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> tuple[float, float]:
    """Grid pixels per image pixel along x and y.

    Args:
        image_hw: ``(H, W)`` of the original image.
        grid_hw: ``(H_g, W_g)`` of the grid.

    Returns:
        ``(W_g / W, H_g / H)``.

    Raises:
        XLMError: for a size that is not two positive numbers.
    """
    h, w = _check_hw(image_hw, "image_hw")
    gh, gw = _check_hw(grid_hw, "grid_hw")
    return gw / w, gh / h


def to_grid(xy: Any, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> Any:
    """Map (x, y) in original-image pixels to grid pixels (pixel-centre convention).

    ``x_g = (x + 0.5) * W_g / W - 0.5``, ``y_g = (y + 0.5) * H_g / H - 0.5``. Inverse:
    :func:`from_grid`.

    Args:
        xy: ``(..., 2)`` (x, y) in original pixels.
        image_hw: ``(H, W)`` of the original image.
        grid_hw: ``(H_g, W_g)`` of the grid.

    Returns:
        ``(..., 2)`` float64 numpy array of grid coordinates.

    Raises:
        XLMError: for coordinates not shaped ``(..., 2)`` or an invalid size.
    """
    sx, sy = grid_scale_xy(image_hw, grid_hw)
    return _affine(xy, (sx, sy), (0.5 * sx - 0.5, 0.5 * sy - 0.5))


def from_grid(xy: Any, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> Any:
    """Map (x, y) grid pixels back to original pixels (inverse of :func:`to_grid`).

    ``x = (x_g + 0.5) * W / W_g - 0.5``, ``y = (y_g + 0.5) * H / H_g - 0.5``.

    Args:
        xy: ``(..., 2)`` (x, y) in grid pixels.
        image_hw: ``(H, W)`` of the original image.
        grid_hw: ``(H_g, W_g)`` of the grid.

    Returns:
        ``(..., 2)`` float64 numpy array in original pixels.

    Raises:
        XLMError: for coordinates not shaped ``(..., 2)`` or an invalid size.
    """
    sx, sy = grid_scale_xy(grid_hw, image_hw)
    return _affine(xy, (sx, sy), (0.5 * sx - 0.5, 0.5 * sy - 0.5))


def normalise(xy: Any, image_hw: tuple[int, int]) -> Any:
    """Pixels -> normalised coordinates in [0, 1]: ``u = (x + 0.5) / W``, ``v = (y + 0.5) / H``.

    Args:
        xy: ``(..., 2)`` (x, y) in pixels.
        image_hw: ``(H, W)`` of the image.

    Returns:
        ``(..., 2)`` float64 (u, v).

    Raises:
        XLMError: for coordinates not shaped ``(..., 2)`` or an invalid size.
    """
    h, w = _check_hw(image_hw, "image_hw")
    return _affine(xy, (1.0 / w, 1.0 / h), (0.5 / w, 0.5 / h))


def denormalise(uv: Any, image_hw: tuple[int, int]) -> Any:
    """Normalised coordinates -> pixels: ``x = u * W - 0.5``, ``y = v * H - 0.5``.

    Args:
        uv: ``(..., 2)`` (u, v) in [0, 1].
        image_hw: ``(H, W)`` of the image.

    Returns:
        ``(..., 2)`` float64 (x, y) in pixels.

    Raises:
        XLMError: for coordinates not shaped ``(..., 2)`` or an invalid size.
    """
    h, w = _check_hw(image_hw, "image_hw")
    return _affine(uv, (w, h), (-0.5, -0.5))
