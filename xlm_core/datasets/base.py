"""The dataset contract every loader returns.

A loader reads one dataset root (real layout or a synthetic phantom written in
that layout) and returns a :class:`LandmarkSet`: the usable samples with float
landmarks in original-image pixels, the physical-scale rule, the paper's split
and every problem found along the way (nothing is silently dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset root.

    Attributes:
        file: the file (or folder) concerned.
        problem: what is wrong, in words.
        fatal: True when the image cannot be used.
        image_id: the image id the problem belongs to (None: it belongs to no single image).
    """

    file: str
    problem: str
    fatal: bool = True
    #: the image id the problem belongs to (``None``: it belongs to no single image)
    image_id: str | None = None


@dataclass(frozen=True)
class Scale:
    """How a radial error in original-image pixels becomes the dataset's unit.

    - fixed spacing (head): ``unit="mm", mm_per_px=0.1``
    - wrist rule (hand): ``unit="mm", wrist_pair=(1, 5)`` (0-based landmark indices),
      ``mm_per_px = wrist_mm / |p[a] - p[b]|`` per image, from the ground truth
    - pixels (chest): ``unit="px"``

    Attributes:
        unit: ``"mm"`` or ``"px"``.
        mm_per_px: a fixed spacing, or None.
        wrist_pair: 0-based landmark pair whose distance is ``wrist_mm``, or None.
        wrist_mm: the assumed wrist width in mm.
    """

    unit: str = "px"
    mm_per_px: float | None = None
    wrist_pair: tuple[int, int] | None = None
    wrist_mm: float = 50.0

    def factors(self, gt_landmarks_px: np.ndarray) -> np.ndarray:
        """Unit per original pixel for each image.

        Args:
            gt_landmarks_px: ``(N, L, 2)`` (x, y) ground truth in original pixels (the wrist rule
                reads it).

        Returns:
            ``(N,)`` float64 factors (inf where a wrist width is 0).
        """
        gt = np.asarray(gt_landmarks_px, dtype=np.float64)
        n = gt.shape[0]
        if self.wrist_pair is not None:
            a, b = self.wrist_pair
            width_px = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
            return self.wrist_mm / width_px
        if self.mm_per_px is not None:
            return np.full(n, float(self.mm_per_px))
        return np.ones(n)

    def describe(self) -> str:
        """The rule in words, e.g. ``"mm: 0.1 mm per original pixel"``.

        Returns:
            One line.
        """
        if self.wrist_pair is not None:
            a, b = self.wrist_pair
            return f"mm: {self.wrist_mm:g} mm / distance between landmarks {a + 1} and {b + 1} (1-based)"
        if self.mm_per_px is not None:
            return f"mm: {self.mm_per_px:g} mm per original pixel"
        return "px: original-image pixels"


@dataclass(frozen=True)
class Sample:
    """One annotated image.

    Attributes:
        id: the image id.
        image: the image file.
        landmarks: ``(L, 2)`` float64, (x, y) in original pixels.
        size_wh: the image's ``(W, H)`` in pixels as read by the loader (None if unknown).
    """

    id: str
    image: Path
    landmarks: np.ndarray
    size_wh: tuple[int, int] | None = None


@dataclass
class LandmarkSet:
    """A loaded dataset: usable samples (sorted by id), its rules and its problems.

    Attributes:
        name: the dataset's name.
        root: its folder.
        samples: the usable samples, in natural id order.
        landmark_names: L names.
        scale: the error unit rule.
        thresholds: SDR thresholds in ``scale.unit``.
        train_size: ``(H, W)`` the paper trains at.
        test_size: ``(H, W)`` the paper evaluates at.
        train_ids: ids of the training split.
        test_ids: ids of the test split.
        problems: everything found wrong.
        synthetic: True for a phantom set.
        options: the loader options that produced this set.
        annotator_disagreement: with several annotation sources, their disagreement per
            landmark (:func:`xlm_core.datasets.engine.annotator_disagreement`), else None.
        dropped: unusable images skipped, ``[(image id, reason)]`` sorted by id.
        images_found: image files found (usable or not; None: not counted).
    """

    name: str
    root: Path
    samples: list[Sample]
    landmark_names: list[str]
    scale: Scale
    thresholds: tuple[float, ...]
    train_size: tuple[int, int]  # (H, W) the paper trains at
    test_size: tuple[int, int]  # (H, W) the paper evaluates at
    train_ids: list[str]
    test_ids: list[str]
    problems: list[Problem] = field(default_factory=list)
    synthetic: bool = False
    options: dict = field(default_factory=dict)  # the loader options that produced this set
    #: with several annotation sources: their disagreement per landmark (see
    #: :func:`xlm_core.datasets.engine.annotator_disagreement`), else ``None``
    annotator_disagreement: dict | None = None
    #: unusable images the loader skipped: ``[(image id, reason)]``, sorted by id (see
    #: :func:`xlm_core.datasets.check.dropped_images`); training prints and records them
    dropped: list[tuple[str, str]] = field(default_factory=list)
    #: image files the loader found (usable or not, annotated or not; ``None``: not counted)
    images_found: int | None = None
    #: the descriptor's ``group_by`` regex (its first group names an id's patient), or None
    group_by: str | None = None

    def groups(self, ids: list[str]) -> dict[str, str]:
        """``{id: patient group}``: the ``group_by`` regex's first group, or the id itself
        where it does not match (or without a rule): images of one group share a fold."""
        import re

        pattern = re.compile(self.group_by) if self.group_by else None
        out = {}
        for image_id in ids:
            match = pattern.search(image_id) if pattern else None
            out[image_id] = f"group {match.group(1)}" if match else image_id
        return out

    @property
    def fatal_problems(self) -> list[Problem]:
        """The problems that made an image unusable."""
        return [p for p in self.problems if p.fatal]

    @property
    def n_landmarks(self) -> int:
        """L, the number of landmarks per image."""
        return len(self.landmark_names)

    @property
    def data_source(self) -> str:
        """``"synthetic"`` or ``"real"``."""
        return "synthetic" if self.synthetic else "real"

    def by_id(self) -> dict[str, Sample]:
        """The samples by id.

        Returns:
            ``{id: Sample}``.
        """
        return {s.id: s for s in self.samples}

    def subset(self, ids: list[str]) -> list[Sample]:
        """The samples of ``ids``, in that order.

        Args:
            ids: image ids of this set.

        Returns:
            The samples.

        Raises:
            KeyError: for an id not in the set.
        """
        index = self.by_id()
        return [index[i] for i in ids]
