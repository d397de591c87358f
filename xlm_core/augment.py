"""Keypoint-aware augmentation for training (albumentations 2.0.8), drawn per sample.

One :class:`LandmarkAugmenter` holds the *ranges*; every call draws fresh parameters from a
seed the caller derives from ``(run seed, epoch, sample index)`` (:func:`sample_seed`). So two
reads of one sample differ (trap 5 in ``docs/protocols.md``: parameters drawn once when the
dataset is built are no augmentation at all), yet a run is a pure function of its seed,
whatever the number of loader workers and whether it was resumed.

What it does: a small affine warp (rotation, isotropic scale, shift; constant zero border) and
brightness/contrast. No horizontal flip: it would swap left and right landmarks (the landmark
order is anatomical).

Layouts: images are ``(H, W)`` float32 in ``[0, 1]``; landmarks are ``(L, 2)`` (x, y) in the
pixels of that image. Landmarks pushed outside the image are kept (``remove_invisible=False``),
so the landmark count never changes; their Gaussian target is simply cut off at the border.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one read of one sample: distinct per (seed, epoch, index), reproducible.

    Args:
        seed: the run's seed.
        epoch: the epoch.
        index: the sample's index in its dataset (or a stream number).

    Returns:
        An integer in ``[0, 2**32)`` from ``numpy.random.SeedSequence``.
    """
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])
    return int(state.generate_state(1, dtype=np.uint32)[0])


@dataclass
class LandmarkAugmenter:
    """Random affine + brightness/contrast applied jointly to an image and its landmarks.

    Built on albumentations; the pipeline is built on first use and rebuilt in each worker.
    No flips (a flip would swap left and right landmarks).

    Args:
        rotate_deg: rotation drawn in ``[-rotate_deg, rotate_deg]`` degrees.
        scale: ``(low, high)`` isotropic zoom range.
        shift_fraction: translation in ``[-f, f]`` of the image size per axis.
        brightness: albumentations' brightness limit.
        contrast: albumentations' contrast limit.
        p_affine: probability that the affine part is applied.
        p_intensity: probability that the brightness/contrast part is applied.
    """

    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift_fraction: float = 0.05
    brightness: float = 0.2
    contrast: float = 0.2
    p_affine: float = 0.9
    p_intensity: float = 0.5
    _compose: Any = field(default=None, init=False, repr=False, compare=False)

    def describe(self) -> dict:
        """The ranges, JSON-ready (for metrics.json and the book).

        Returns:
            A dict of every field plus ``"flip": False``.
        """
        return {
            "rotate_deg": self.rotate_deg,
            "scale": list(self.scale),
            "shift_fraction": self.shift_fraction,
            "brightness": self.brightness,
            "contrast": self.contrast,
            "p_affine": self.p_affine,
            "p_intensity": self.p_intensity,
            "flip": False,
        }

    def _build(self) -> Any:
        import albumentations as A
        import cv2

        return A.Compose(
            [
                A.Affine(
                    rotate=(-self.rotate_deg, self.rotate_deg),
                    scale=tuple(self.scale),
                    translate_percent=(-self.shift_fraction, self.shift_fraction),
                    interpolation=cv2.INTER_LINEAR,
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    p=self.p_affine,
                ),
                A.RandomBrightnessContrast(
                    brightness_limit=self.brightness,
                    contrast_limit=self.contrast,
                    p=self.p_intensity,
                ),
            ],
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
            seed=0,
        )

    def __getstate__(self) -> dict:  # the albumentations pipeline is rebuilt in each worker
        state = dict(self.__dict__)
        state["_compose"] = None
        return state

    def __call__(
        self, image: np.ndarray, landmarks_xy: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment an image and its landmarks with parameters drawn from ``seed``.

        Args:
            image: ``(H, W)`` float32 grey image in [0, 1].
            landmarks_xy: ``(L, 2)`` (x, y) in the image's pixels.
            seed: the draw's seed (:func:`sample_seed`).

        Returns:
            ``(image, landmarks)``: ``(H, W)`` float32 in [0, 1] and ``(L, 2)`` float64 (x, y) in the
            same pixel frame (landmarks moved outside the image are kept).
        """
        if self._compose is None:
            self._compose = self._build()
        image = np.ascontiguousarray(image, dtype=np.float32)
        points = np.asarray(landmarks_xy, dtype=np.float64).reshape(-1, 2)
        self._compose.set_random_seed(int(seed))
        out = self._compose(image=image, keypoints=points)
        moved = np.asarray(out["keypoints"], dtype=np.float64).reshape(-1, 2)
        if moved.shape != points.shape:  # remove_invisible=False keeps every point
            raise RuntimeError(f"augmentation changed the landmark count {points.shape} -> {moved.shape}")
        augmented = np.clip(np.asarray(out["image"], dtype=np.float32), 0.0, 1.0)
        return augmented.reshape(image.shape), moved


def default_augmenter() -> LandmarkAugmenter:
    """The augmentation every training run uses (the ranges are listed in metrics.json).

    Returns:
        ``LandmarkAugmenter()`` with its default ranges.
    """
    return LandmarkAugmenter()
