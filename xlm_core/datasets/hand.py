"""HAND: the Digital Hand Atlas with Payer et al.'s 37 landmarks.

Layout::

    ROOT/jpg/NNNN.jpg     (the DHA distribution format) and/or
    ROOT/mha/NNNN.mha     (Payer's converted images)
    ROOT/all.csv          id,x1,y1,...,x37,y37 (pixels, no header)

``image_format="auto"`` takes the jpg when both exist for an id. An image without a CSV
row, or a row without an image, is skipped and reported (not fatal). Errors are in mm:
50 mm over the distance between the two wrist landmarks ``wrist_pair`` (0-based; default
(1, 5) = Payer's 1-based 2 and 6; Zhu et al. use (0, 4)). Split: first 609 of the
annotated images (sorted ids) train, last 300 test.

These rules live in the built-in descriptor ``descriptors/hand.yaml``, read by the one
loader of every dataset (:mod:`xlm_core.datasets.engine`); this module keeps the table
reader, the wrist-pair rule and the constants.
"""

from __future__ import annotations

import os

from xlm_core import XLMError
from xlm_core.datasets.base import Sample
from xlm_core.datasets.check import ProblemLog

N_LANDMARKS = 37
LANDMARK_NAMES = [f"L{i}" for i in range(1, N_LANDMARKS + 1)]
WRIST_PAIR_PAYER = (1, 5)
WRIST_PAIR_ZHU = (0, 4)
WRIST_MM = 50.0
THRESHOLDS_MM = (2.0, 4.0, 10.0)
PAPER_TRAIN, PAPER_TOTAL = 609, 909
TRAIN_SIZE_HW = (512, 512)
TEST_SIZE_HW = (512, 368)
IMAGE_FORMATS = ("auto", "jpg", "mha")


def parse_wrist_pair(value) -> tuple[int, int]:
    """The hand's wrist pair as 0-based landmark indices.

    Args:
        value: ``(a, b)`` 0-based, or the names ``"payer"`` (1, 5) / ``"zhu"`` (0, 4).

    Returns:
        ``(a, b)``.

    Raises:
        XLMError: for an unknown name, a pair out of range or of equal indices.
    """
    from xlm_core.datasets.engine import parse_pair

    return parse_pair(value, N_LANDMARKS, {"payer": WRIST_PAIR_PAYER, "zhu": WRIST_PAIR_ZHU})


def load_hand(
    root: str | os.PathLike,
    image_format: str = "auto",
    wrist_pair=WRIST_PAIR_PAYER,
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read a HAND root with the built-in descriptor ``descriptors/hand.yaml``.

    Use :func:`xlm_core.datasets.load_dataset` for a :class:`LandmarkSet`.

    Args:
        root: the dataset root (``jpg/`` or ``mha/`` images and ``all.csv``).
        image_format: ``"auto"``, ``"jpg"`` or ``"mha"``.
        wrist_pair: the pair whose distance is 50 mm (:func:`parse_wrist_pair`).
        verify_images: decode every image (finds truncated files; slower).
        log: a problem log to add to; None: a new one.

    Returns:
        ``(usable samples, problems, settings)``; ``settings`` holds ``scale``,
        ``thresholds``, sizes, paper split counts, names.

    Raises:
        XLMError: for an unknown image format, a bad wrist pair, or a wrong root.
    """
    from xlm_core.datasets.descriptor import builtin_descriptor
    from xlm_core.datasets.engine import load_described

    if image_format not in IMAGE_FORMATS:
        raise XLMError(f"hand image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    return load_described(builtin_descriptor("hand"), root, image_format=image_format,
                          wrist_pair=parse_wrist_pair(wrist_pair), verify_images=verify_images, log=log)
