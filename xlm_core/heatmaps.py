"""Gaussian heatmap targets and landmark decoding.

Layouts: landmarks ``(..., L, 2)`` as ``(x, y)`` in grid pixels (see :mod:`xlm_core.geometry`
to get there from the original image); heatmaps ``(..., L, H, W)``: row index = y, column = x.

Encoding (:func:`gaussian_heatmaps`). Each map is ``exp(-d^2 / (2 sigma^2))`` with ``d`` the
distance from the pixel centre to the landmark, set to 0 where ``d > truncate * sigma`` (a
disc, so the target is isotropic), peak 1 when the landmark sits on a pixel centre. Only a
square window of radius ``ceil(truncate * sigma)`` around the landmark's nearest pixel is
computed (it contains the whole disc), never a full-image exponential per landmark.
A landmark outside the grid's area (``x`` outside ``[-0.5, W - 0.5]`` or ``y`` outside
``[-0.5, H - 0.5]``) or with a NaN coordinate gets an all-zero map: the network is not
asked to point at something it cannot see. A landmark inside but near the border gets its
Gaussian clipped by the border. :func:`full_image_heatmaps` is the same definition
computed over every pixel: the reference for tests and benchmarks, not for training.

Decoding. :func:`decode_argmax` returns the integer pixel of the maximum.
:func:`decode_subpixel` refines it with one Newton step on the logarithm of the heatmap
(a second-order Taylor expansion around the maximum, as in DARK, Zhang et al., CVPR 2020):
``mu = c - H^-1 grad`` with the gradient and Hessian from central differences on the 3x3
neighbourhood. The log of a Gaussian is a quadratic, and finite differences are exact on
quadratics, so on noise-free Gaussian heatmaps the result is exact up to float rounding,
including for landmarks on the border (there the 3x3 stencil is shifted inside the grid,
still exact for a quadratic). A local soft-argmax, by contrast, is biased whenever its
window is cut by the border or by the truncation. Robustness rules: the logarithm is used
when the five central-cross values are positive (otherwise the raw values are fitted, as a
plain quadratic peak fit); the mixed derivative is dropped when a corner is not positive;
when the Hessian is not negative definite each axis falls back to a 1-D parabola, and to
the argmax when that is not concave either; the refinement is clamped to 1 pixel from the
argmax and to the grid's area. Grids smaller than 3 pixels along an axis are not refined.
Exactness needs the stencil inside the truncation disc: always true for ``truncate * sigma
>= 2.2`` away from the border (``sigma >= 1`` with ``truncate = 3``); a landmark within half a
pixel of a grid corner needs ``truncate * sigma >= 3.6``. The tests cover sigma 1 to 5.

:func:`decode_softargmax_local` is the mean position of a non-negative map (a probability
map, e.g. the spatial softmax) inside a square window of radius ``r`` around its argmax.
:func:`xlm_core.registry.softargmax_radius` gives ``r = ceil(truncate * sigma + 0.5)``: the window then holds
the whole truncated target disc of a landmark within half a pixel of the argmax, so on a
target-shaped map the mean is the landmark up to the pixel sampling of the disc's edge
(< 0.015 px for sigma 1 to 5, tested); a trained map is not target-shaped, and the mean then
averages its uncertainty instead of fitting a quadratic to its top 3x3 pixels. Where the
window would cross the grid's border, the border cuts the map and would pull the mean
inwards (how far: ``docs/decisions.md``, "Decoders"). ``border`` chooses what happens there: ``newton``
(the default: the Newton step above, exact on a Gaussian), ``clipped`` (the cut window's
mean) or ``symmetric`` (per axis the largest window centred on the argmax that fits, so a map
symmetric about its peak keeps its mean). :func:`xlm_core.losses.decode_for_loss` says which
decoder and which border rule go with which loss (why: ``docs/decisions.md``, section
"Decoders").

The decoders accept numpy arrays or torch tensors ``(..., L, H, W)`` and return the same
kind ``(..., L, 2)`` (torch: on the heatmap's device, in its floating dtype).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xlm_core import XLMError
from xlm_core.registry import check_sigma

_TINY = 1e-30


def _check_grid(grid_hw: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in grid_hw)
    except (TypeError, ValueError) as exc:
        raise XLMError(f"grid_hw must be (H, W) integers, got {grid_hw!r}") from exc
    if h < 1 or w < 1:
        raise XLMError(f"grid_hw must be positive (H, W), got {grid_hw!r}")
    return h, w


def _check_landmarks(landmarks_xy: Any) -> np.ndarray:
    xy = np.asarray(landmarks_xy, dtype=np.float64)
    if xy.ndim < 2 or xy.shape[-1] != 2:
        raise XLMError(f"landmarks must be (..., L, 2) (x, y), got shape {xy.shape}")
    return xy


def _inside_grid(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(x)
            & np.isfinite(y)
            & (x >= -0.5)
            & (x <= w - 0.5)
            & (y >= -0.5)
            & (y <= h - 0.5)
        )


def gaussian_heatmaps(
    landmarks_xy: Any, grid_hw: tuple[int, int], sigma: float, truncate: float = 3.0
) -> np.ndarray:
    """Gaussian targets for landmarks in grid pixels.

    Computed in a window of radius ``ceil(truncate * sigma)`` around each landmark (vectorised
    over landmarks); zero beyond ``truncate * sigma``; all-zero for a landmark outside the grid
    or with a NaN coordinate (module docstring).

    Args:
        landmarks_xy: ``(..., L, 2)`` (x, y) in grid pixels (pixel centres at integers).
        grid_hw: ``(H, W)`` of the heatmap grid.
        sigma: the Gaussian's standard deviation in grid pixels.
        truncate: the disc radius in units of ``sigma``.

    Returns:
        ``(..., L, H, W)`` float32 numpy array, peak 1 on a landmark at a pixel centre.

    Raises:
        XLMError: for landmarks not shaped ``(..., L, 2)``, a non-positive or non-integer grid,
            or an invalid ``sigma``/``truncate``.
    """
    xy = _check_landmarks(landmarks_xy)
    h, w = _check_grid(grid_hw)
    check_sigma(sigma, truncate)
    lead = xy.shape[:-1]
    flat = xy.reshape(-1, 2)
    out = np.zeros((flat.shape[0], h, w), dtype=np.float32)
    todo = np.nonzero(_inside_grid(flat, h, w))[0]
    if todo.size == 0:
        return out.reshape(*lead, h, w)
    p = flat[todo]
    radius = math.ceil(truncate * sigma)
    offsets = np.arange(-radius, radius + 1)
    cols = np.floor(p[:, 0] + 0.5).astype(np.int64)[:, None] + offsets  # (m, K) pixel x
    rows = np.floor(p[:, 1] + 0.5).astype(np.int64)[:, None] + offsets  # (m, K) pixel y
    d2 = (rows - p[:, 1:2])[:, :, None] ** 2 + (cols - p[:, 0:1])[:, None, :] ** 2  # (m, K, K)
    keep = (
        (d2 <= (truncate * sigma) ** 2)
        & ((rows >= 0) & (rows < h))[:, :, None]
        & ((cols >= 0) & (cols < w))[:, None, :]
    )
    values = np.exp(-d2[keep] / (2.0 * sigma**2))
    which = np.broadcast_to(todo[:, None, None], keep.shape)[keep]
    out[
        which,
        np.broadcast_to(rows[:, :, None], keep.shape)[keep],
        np.broadcast_to(cols[:, None, :], keep.shape)[keep],
    ] = values
    return out.reshape(*lead, h, w)


def full_image_heatmaps(
    landmarks_xy: Any, grid_hw: tuple[int, int], sigma: float, truncate: float | None = 3.0
) -> np.ndarray:
    """Reference: the same maps as :func:`gaussian_heatmaps`, an exponential over every pixel.

    For tests and benchmarks only (memory and time ``L x H x W`` exponentials).

    Args:
        landmarks_xy: ``(..., L, 2)`` (x, y) in grid pixels.
        grid_hw: ``(H, W)`` of the heatmap grid.
        sigma: the Gaussian's standard deviation in grid pixels.
        truncate: the disc radius in units of ``sigma``; None: the untruncated Gaussian.

    Returns:
        ``(..., L, H, W)`` float32 numpy array.

    Raises:
        XLMError: as :func:`gaussian_heatmaps`.
    """
    xy = _check_landmarks(landmarks_xy)
    h, w = _check_grid(grid_hw)
    check_sigma(sigma, truncate)
    lead = xy.shape[:-1]
    flat = xy.reshape(-1, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d2 = (xx[None] - flat[:, 0, None, None]) ** 2 + (yy[None] - flat[:, 1, None, None]) ** 2
    with np.errstate(invalid="ignore"):
        maps = np.exp(-d2 / (2.0 * sigma**2))
        if truncate is not None:
            maps[d2 > (truncate * sigma) ** 2] = 0.0
    maps[~_inside_grid(flat, h, w)] = 0.0
    return maps.astype(np.float32).reshape(*lead, h, w)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _check_heatmaps(heatmaps: Any) -> None:
    if heatmaps.ndim < 2:
        raise XLMError(f"heatmaps must be (..., H, W), got shape {tuple(heatmaps.shape)}")
    if heatmaps.shape[-1] == 0 or heatmaps.shape[-2] == 0:
        raise XLMError(f"heatmaps have an empty grid: shape {tuple(heatmaps.shape)}")


def _argmax_flat(heatmaps: Any) -> Any:
    """Flat index (row * W + col) of the maximum of each ``(H, W)`` map."""
    if _is_torch(heatmaps):
        return heatmaps.flatten(-2).argmax(-1)
    h, w = heatmaps.shape[-2:]
    return heatmaps.reshape(*heatmaps.shape[:-2], h * w).argmax(-1)


def decode_argmax(heatmaps: Any) -> Any:
    """Integer (x, y) of each map's maximum.

    Ties: the first maximum in row-major order.

    Args:
        heatmaps: ``(..., L, H, W)`` numpy array or torch tensor.

    Returns:
        ``(..., L, 2)`` (x, y) grid pixels: numpy in, float64 numpy out; torch in, torch out on
        the same device (float32 unless the input is float64).

    Raises:
        XLMError: for fewer than 2 dimensions or an empty grid.
    """
    if not _is_torch(heatmaps):
        heatmaps = np.asarray(heatmaps)
    _check_heatmaps(heatmaps)
    w = heatmaps.shape[-1]
    idx = _argmax_flat(heatmaps)
    if _is_torch(heatmaps):
        import torch

        dtype = heatmaps.dtype if heatmaps.dtype == torch.float64 else torch.float32
        return torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(dtype)
    return np.stack([idx % w, idx // w], axis=-1).astype(np.float64)


# 3x3 stencil offsets, row-major: (dy, dx) for dy in -1..1, dx in -1..1
_DY = (-1, -1, -1, 0, 0, 0, 1, 1, 1)
_DX = (-1, 0, 1, -1, 0, 1, -1, 0, 1)


def _newton_offsets(v: Any, xp: Any) -> tuple[Any, Any, Any, Any]:
    """Sub-pixel peak offset from a 3x3 stencil ``v`` (..., 9) (row-major, centre at index 4).

    Returns ``(dx, dy, ok_x, ok_y)``: offsets relative to the stencil centre, and whether each
    is valid (else the caller keeps the argmax). ``xp`` is numpy or torch.
    """
    cross = v[..., [1, 3, 4, 5, 7]]
    corners = v[..., [0, 2, 6, 8]]
    cross_pos = (cross > 0).all(-1)
    corners_pos = (corners > 0).all(-1)
    if xp is np:
        logv = np.log(np.maximum(v, _TINY))
    else:
        logv = xp.log(v.clamp(min=_TINY))
    f = xp.where(cross_pos[..., None], logv, v)
    gx = (f[..., 5] - f[..., 3]) / 2.0
    gy = (f[..., 7] - f[..., 1]) / 2.0
    hxx = f[..., 5] - 2.0 * f[..., 4] + f[..., 3]
    hyy = f[..., 7] - 2.0 * f[..., 4] + f[..., 1]
    hxy = (f[..., 8] - f[..., 6] - f[..., 2] + f[..., 0]) / 4.0
    hxy = xp.where(cross_pos & ~corners_pos, 0.0 * hxy, hxy)
    det = hxx * hyy - hxy * hxy
    newton = (hxx < 0) & (det > 0)
    safe_det = xp.where(newton, det, 1.0 + 0.0 * det)
    dx_n = -(hyy * gx - hxy * gy) / safe_det
    dy_n = -(hxx * gy - hxy * gx) / safe_det
    concave_x, concave_y = hxx < 0, hyy < 0
    dx_1 = -gx / xp.where(concave_x, hxx, -1.0 + 0.0 * hxx)
    dy_1 = -gy / xp.where(concave_y, hyy, -1.0 + 0.0 * hyy)
    dx = xp.where(newton, dx_n, dx_1)
    dy = xp.where(newton, dy_n, dy_1)
    return dx, dy, newton | concave_x, newton | concave_y


def _clip(v: Any, lo: Any, hi: Any, xp: Any) -> Any:
    return np.clip(v, lo, hi) if xp is np else xp.clamp(v, min=lo, max=hi)


def decode_subpixel(heatmaps: Any) -> Any:
    """Sub-pixel (x, y) of each map's peak: a Newton step on the log-heatmap around the argmax.

    See the module docstring for the method and its fallbacks; grids smaller than 3 pixels
    along an axis return :func:`decode_argmax`.

    Args:
        heatmaps: ``(..., L, H, W)`` numpy array or torch tensor.

    Returns:
        ``(..., L, 2)`` (x, y) grid pixels: numpy in, float64 numpy out; torch in, torch out on
        the same device (float32 unless the input is float64), computed in float64 except on MPS.

    Raises:
        XLMError: for fewer than 2 dimensions or an empty grid.
    """
    torch_in = _is_torch(heatmaps)
    if not torch_in:
        heatmaps = np.asarray(heatmaps)
    _check_heatmaps(heatmaps)
    h, w = heatmaps.shape[-2:]
    if h < 3 or w < 3:
        return decode_argmax(heatmaps)
    idx = _argmax_flat(heatmaps)
    if torch_in:
        import torch

        xp = torch
        ix, iy = idx % w, torch.div(idx, w, rounding_mode="floor")
        cx, cy = ix.clamp(1, w - 2), iy.clamp(1, h - 2)
        dy = torch.tensor(_DY, device=idx.device)
        dx = torch.tensor(_DX, device=idx.device)
        stencil_idx = (cy[..., None] + dy) * w + (cx[..., None] + dx)
        v = torch.gather(heatmaps.flatten(-2), -1, stencil_idx)
        work = torch.float32 if heatmaps.device.type == "mps" else torch.float64
        v = v.to(work)
        ix, iy, cx, cy = (t.to(work) for t in (ix, iy, cx, cy))
    else:
        xp = np
        ix, iy = idx % w, idx // w
        cx, cy = np.clip(ix, 1, w - 2), np.clip(iy, 1, h - 2)
        stencil_idx = (cy[..., None] + np.array(_DY)) * w + (cx[..., None] + np.array(_DX))
        flat = heatmaps.reshape(*heatmaps.shape[:-2], h * w)
        v = np.take_along_axis(flat, stencil_idx, axis=-1).astype(np.float64)
        ix, iy, cx, cy = (a.astype(np.float64) for a in (ix, iy, cx, cy))
    with np.errstate(divide="ignore", invalid="ignore"):
        off_x, off_y, ok_x, ok_y = _newton_offsets(v, xp)
    x = xp.where(ok_x, cx + off_x, ix)
    y = xp.where(ok_y, cy + off_y, iy)
    # finite, within one pixel of the argmax, inside the grid's area
    x = _clip(
        xp.where(xp.isnan(x), ix, x),
        _clip(ix - 1, -0.5, w - 0.5, xp),
        _clip(ix + 1, -0.5, w - 0.5, xp),
        xp,
    )
    y = _clip(
        xp.where(xp.isnan(y), iy, y),
        _clip(iy - 1, -0.5, h - 0.5, xp),
        _clip(iy + 1, -0.5, h - 0.5, xp),
        xp,
    )
    out = xp.stack([x, y], -1)
    if torch_in:
        dtype = heatmaps.dtype if heatmaps.dtype == torch.float64 else torch.float32
        return out.to(dtype)
    return out


#: how :func:`decode_softargmax_local` decodes a map whose window would cross the grid's border
BORDER_RULES = ("newton", "clipped", "symmetric")


def decode_softargmax_local(maps: Any, radius: int, border: str = "newton") -> Any:
    """Mean (x, y) of each non-negative map within ``radius`` pixels (Chebyshev) of its argmax.

    ``(..., L, H, W)`` -> ``(..., L, 2)``. ``border`` says what happens where that window
    crosses the grid's border: ``newton`` (:func:`decode_subpixel` instead), ``clipped`` (the
    mean over the part of the window inside the grid, pulled inwards by the cut), or
    ``symmetric`` (per axis the largest window centred on the argmax that fits in the grid:
    ``min(radius, distance to the nearer edge)``, so a map symmetric about its peak keeps its
    mean; an argmax on the edge keeps that axis's integer position). A map with no mass in its
    window: :func:`decode_subpixel`. numpy in: float64 numpy out; torch in: torch out on the
    same device (float32 unless the input is float64).

    Args:
        maps: ``(..., L, H, W)`` non-negative maps.
        radius: the window's half-width in pixels (>= 0).
        border: ``newton``, ``clipped`` or ``symmetric``.

    Returns:
        ``(..., L, 2)`` (x, y) grid pixels.

    Raises:
        XLMError: for an unknown border rule or a negative radius.
    """
    if border not in BORDER_RULES:
        raise XLMError(f"unknown border rule {border!r}; expected one of {BORDER_RULES}")
    torch_in = _is_torch(maps)
    if not torch_in:
        import torch

        out = decode_softargmax_local(torch.from_numpy(np.asarray(maps, dtype=np.float64)), radius,
                                      border)
        return out.numpy()
    import torch

    _check_heatmaps(maps)
    if int(radius) < 0:
        raise XLMError(f"soft-argmax window radius must be >= 0, got {radius}")
    h, w = maps.shape[-2:]
    work = maps.to(torch.float64 if maps.device.type != "mps" else torch.float32)
    idx = _argmax_flat(work)
    ix = (idx % w).to(work.dtype)[..., None, None]
    iy = torch.div(idx, w, rounding_mode="floor").to(work.dtype)[..., None, None]
    xs = torch.arange(w, device=maps.device, dtype=work.dtype)
    ys = torch.arange(h, device=maps.device, dtype=work.dtype)[:, None]
    if border == "symmetric":
        rx = torch.clamp(torch.minimum(ix, (w - 1) - ix), max=float(radius))
        ry = torch.clamp(torch.minimum(iy, (h - 1) - iy), max=float(radius))
    else:
        rx = ry = torch.full_like(ix, float(radius))
    window = ((xs - ix).abs() <= rx) & ((ys - iy).abs() <= ry)
    mass = torch.where(window, work.clamp(min=0), torch.zeros_like(work))
    total = mass.sum((-2, -1))
    ix, iy = ix[..., 0, 0], iy[..., 0, 0]
    use_mean = total > 0
    if border == "newton":
        use_mean &= (ix >= radius) & (ix <= w - 1 - radius) & (iy >= radius) & (iy <= h - 1 - radius)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    mean = torch.stack([(mass * xs).sum((-2, -1)) / safe, (mass * ys).sum((-2, -1)) / safe], -1)
    out = torch.where(use_mean[..., None], mean, decode_subpixel(work).to(work.dtype))
    dtype = maps.dtype if maps.dtype == torch.float64 else torch.float32
    return out.to(dtype)
