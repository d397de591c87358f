"""Drawing primitives of the synthetic phantoms: signed distances, a canvas, rendering.

:mod:`xlm_core.datasets.synth` draws each anatomy with these: shapes are signed-distance
functions (negative inside) added to an attenuation map (:class:`Canvas`) with a 1-px
anti-aliased edge, then :func:`render` turns the map into an 8-bit x-ray-like picture. All
geometry is in pixels of the output image, pixel centres at integer coordinates. Pure
numpy/scipy; the random stream comes from the caller, so the same stream gives the same bytes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
from scipy import ndimage


def _segment_distance(xs: np.ndarray, ys: np.ndarray, a, b) -> np.ndarray:
    """Distance from grid points to the segment a-b (pixels)."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    if length2 == 0:
        return np.hypot(xs - ax, ys - ay)
    t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / length2, 0.0, 1.0)
    return np.hypot(xs - (ax + t * dx), ys - (ay + t * dy))


def stroke_sdf(xs, ys, points, radius: float) -> np.ndarray:
    """Signed distance to a thick polyline (negative inside).

    Args:
        xs: x coordinates of the grid points (any shape, pixels).
        ys: y coordinates, same shape.
        points: ``(K, 2)`` (x, y) vertices of the polyline (one point: a disc).
        radius: half the stroke's thickness in pixels.

    Returns:
        Float64 array of ``xs``'s shape.
    """
    pts = np.asarray(points, dtype=np.float64)
    dist = np.full(xs.shape, np.inf)
    for a, b in itertools.pairwise(pts):
        dist = np.minimum(dist, _segment_distance(xs, ys, a, b))
    if len(pts) == 1:
        dist = np.hypot(xs - pts[0, 0], ys - pts[0, 1])
    return dist - radius


def polygon_sdf(xs, ys, points) -> np.ndarray:
    """Signed distance to a closed polygon (negative inside, even-odd rule).

    Args:
        xs: x coordinates of the grid points (any shape, pixels).
        ys: y coordinates, same shape.
        points: ``(K, 2)`` (x, y) vertices, closed implicitly.

    Returns:
        Float64 array of ``xs``'s shape.
    """
    pts = np.asarray(points, dtype=np.float64)
    dist = np.full(xs.shape, np.inf)
    inside = np.zeros(xs.shape, dtype=bool)
    for a, b in zip(pts, np.roll(pts, -1, axis=0)):
        dist = np.minimum(dist, _segment_distance(xs, ys, a, b))
        crosses = (a[1] > ys) != (b[1] > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a[0] + (ys - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        inside ^= crosses & (xs < x_cross)
    return np.where(inside, -dist, dist)


def ellipse_sdf(xs, ys, centre, radii, angle: float = 0.0) -> np.ndarray:
    """Approximate signed distance to an ellipse (exact on circles).

    Args:
        xs: x coordinates of the grid points (any shape, pixels).
        ys: y coordinates, same shape.
        centre: ``(x, y)`` of the centre.
        radii: ``(a, b)`` semi-axes in pixels, before rotation.
        angle: rotation in radians.

    Returns:
        Float64 array of ``xs``'s shape.
    """
    c, s = math.cos(angle), math.sin(angle)
    u = (xs - centre[0]) * c + (ys - centre[1]) * s
    v = -(xs - centre[0]) * s + (ys - centre[1]) * c
    ra, rb = radii
    k0 = np.hypot(u / ra, v / rb)
    k1 = np.hypot(u / (ra * ra), v / (rb * rb))
    return np.where(k1 > 1e-12, k0 * (k0 - 1.0) / np.maximum(k1, 1e-12), -min(ra, rb))


class Canvas:
    """An attenuation map being drawn: ``density`` (H, W) plus a ``soft`` layer (union by max).

    Args:
        width: W in pixels.
        height: H in pixels.
    """

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.density = np.zeros((height, width))
        self.soft = np.zeros((height, width))

    def _window(self, points, margin: float):
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        x0 = max(math.floor(pts[:, 0].min() - margin), 0)
        x1 = min(math.ceil(pts[:, 0].max() + margin) + 1, self.width)
        y0 = max(math.floor(pts[:, 1].min() - margin), 0)
        y1 = min(math.ceil(pts[:, 1].max() + margin) + 1, self.height)
        if x0 >= x1 or y0 >= y1:
            return None
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        return (slice(y0, y1), slice(x0, x1)), xs, ys

    def draw(
        self,
        sdf: Callable[[np.ndarray, np.ndarray], np.ndarray],
        extent,
        margin: float,
        amount: float,
        rim: float = 0.0,
        rim_px: float = 1.5,
        soft: bool = False,
    ) -> None:
        """Add ``amount`` inside a shape (1-px anti-aliased edge) and ``rim`` along its inner edge.

        Only a window around ``extent`` is computed.

        Args:
            sdf: ``sdf(xs, ys) -> signed distance`` (negative inside).
            extent: points the shape lies around (its bounding box, enlarged by ``margin``).
            margin: pixels beyond ``extent`` the shape may reach.
            amount: attenuation added inside.
            rim: extra attenuation along the inner edge (a cortical rim).
            rim_px: the rim's width in pixels.
            soft: draw into the ``soft`` layer (maximum) instead of adding to ``density``.
        """
        window = self._window(extent, margin + 2)
        if window is None:
            return
        region, xs, ys = window
        d = sdf(xs, ys)
        cover = np.clip(0.5 - d, 0.0, 1.0)
        value = amount * cover
        if rim:
            value = value + rim * cover * np.clip(rim_px + 0.5 + d, 0.0, 1.0)
        if soft:
            self.soft[region] = np.maximum(self.soft[region], value)
        else:
            self.density[region] += value

    # convenience shapes -----------------------------------------------------------
    def polygon(self, pts, amount, rim=0.0, rim_px=1.5, soft=False):
        """Draw a filled closed polygon (:meth:`draw` with :func:`polygon_sdf`).

        Args:
            pts: ``(K, 2)`` (x, y) vertices.
            amount: attenuation added inside.
            rim: extra attenuation along the inner edge.
            rim_px: the rim's width in pixels.
            soft: draw into the ``soft`` layer (maximum) instead of adding to ``density``.
        """
        pts = np.asarray(pts, dtype=np.float64)
        self.draw(lambda x, y: polygon_sdf(x, y, pts), pts, 1, amount, rim, rim_px, soft)

    def stroke(self, pts, radius, amount, rim=0.0, rim_px=1.5, soft=False):
        """Draw a thick polyline (:meth:`draw` with :func:`stroke_sdf`).

        Args:
            pts: ``(K, 2)`` (x, y) vertices.
            radius: half the thickness in pixels.
            amount: attenuation added inside.
            rim: extra attenuation along the inner edge.
            rim_px: the rim's width in pixels.
            soft: draw into the ``soft`` layer (maximum) instead of adding to ``density``.
        """
        pts = np.asarray(pts, dtype=np.float64)
        self.draw(lambda x, y: stroke_sdf(x, y, pts, radius), pts, radius + 1, amount, rim, rim_px, soft)

    def ellipse(self, centre, radii, amount, angle=0.0, rim=0.0, rim_px=1.5, soft=False):
        """Draw a filled ellipse (:meth:`draw` with :func:`ellipse_sdf`).

        Args:
            centre: ``(x, y)``.
            radii: ``(a, b)`` semi-axes in pixels.
            amount: attenuation added inside.
            angle: rotation in radians.
            rim: extra attenuation along the inner edge.
            rim_px: the rim's width in pixels.
            soft: draw into the ``soft`` layer (maximum) instead of adding to ``density``.
        """
        r = max(radii)
        ext = [(centre[0] - r, centre[1] - r), (centre[0] + r, centre[1] + r)]
        self.draw(lambda x, y: ellipse_sdf(x, y, centre, radii, angle), ext, 1, amount, rim, rim_px, soft)

    def ring(self, centre, radii, thickness, amount, angle=0.0):
        """Draw an elliptical ring (the band within ``thickness / 2`` of the ellipse's outline).

        Args:
            centre: ``(x, y)``.
            radii: ``(a, b)`` semi-axes in pixels.
            thickness: the band's width in pixels.
            amount: attenuation added inside the band.
            angle: rotation in radians.
        """
        r = max(radii) + thickness
        ext = [(centre[0] - r, centre[1] - r), (centre[0] + r, centre[1] + r)]
        self.draw(
            lambda x, y: np.abs(ellipse_sdf(x, y, centre, radii, angle)) - thickness / 2,
            ext, 1, amount,
        )

    def bone(self, a, b, radius, head_scale, amount, rim, rim_px=1.5):
        """A long bone whose visible ends are exactly at ``a`` and ``b``: shaft plus wider heads.

        Args:
            a: ``(x, y)`` of one end.
            b: ``(x, y)`` of the other end.
            radius: the shaft's radius in pixels.
            head_scale: the heads' radius as a multiple of ``radius`` (at most a third of the length).
            amount: attenuation inside.
            rim: cortical rim attenuation.
            rim_px: the rim's width in pixels.
        """
        a, b = np.asarray(a, float), np.asarray(b, float)
        axis = b - a
        length = float(np.hypot(*axis))
        direction = axis / max(length, 1e-9)
        head = min(radius * head_scale, length / 3)
        shaft = (a + direction * radius, b - direction * radius)
        heads = (a + direction * head, b - direction * head)

        def sdf(xs, ys):
            d = stroke_sdf(xs, ys, shaft, radius)
            for c in heads:
                d = np.minimum(d, np.hypot(xs - c[0], ys - c[1]) - head)
            return d

        self.draw(sdf, [a, b], head + 1, amount, rim, rim_px)


def render(
    canvas: Canvas, rng: np.random.Generator, gain: float, blur_px: float, noise: float, background: float
) -> np.ndarray:
    """Attenuation -> an 8-bit x-ray-like picture (dense = bright).

    Adds a low-frequency texture, a random gamma, blur and noise.

    Args:
        canvas: the drawn attenuation.
        rng: the image's random stream.
        gain: attenuation multiplier before ``1 - exp(-gain * a)``.
        blur_px: Gaussian blur sigma in pixels.
        noise: standard deviation of the additive noise (image in [0, 1]).
        background: grey level of zero attenuation, in [0, 1].

    Returns:
        ``(H, W)`` uint8 image.
    """
    attenuation = canvas.density + canvas.soft
    height, width = attenuation.shape
    texture = ndimage.gaussian_filter(rng.normal(size=(height, width)), sigma=max(height, width) / 40)
    texture /= max(float(np.abs(texture).max()), 1e-9)
    attenuation = attenuation * (1.0 + 0.12 * texture)
    image = 1.0 - np.exp(-gain * np.clip(attenuation, 0.0, None))
    image = background + (1.0 - background) * image
    image = image ** rng.uniform(0.85, 1.15)
    image = ndimage.gaussian_filter(image, sigma=blur_px)
    image = image + rng.normal(scale=noise, size=image.shape)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
