"""CHEST: Shenzhen chest x-rays with Zhu et al.'s 6 landmarks.

Layout::

    ROOT/pngs/CHNCXR_NNNN_0.png
    ROOT/labels/CHNCXR_NNNN_0.txt   line 1 "6", then 6 lines "x_ratio y_ratio"

Ratios are fractions of the image width and height: ``x_px = x_ratio * W``,
``y_px = y_ratio * H``. Errors are in original-image pixels. Split: the paper's first 229
(sorted ids) train, last 50 test. ``exclusion="zhu"`` drops the 9 ids Zhu et al.'s code
leaves out, then splits first 229 / the remaining 41, as that code does.

These rules live in the built-in descriptor ``descriptors/chest.yaml``, read by the one
loader of every dataset (:mod:`xlm_core.datasets.engine`); this module keeps the label
parser and the constants.
"""

from __future__ import annotations

import os

from xlm_core import XLMError
from xlm_core.datasets.base import Sample
from xlm_core.datasets.check import ProblemLog

N_LANDMARKS = 6
LANDMARK_NAMES = [f"L{i}" for i in range(1, N_LANDMARKS + 1)]
THRESHOLDS_PX = (3.0, 6.0, 9.0)
PAPER_TRAIN, PAPER_TOTAL = 229, 279
TRAIN_SIZE_HW = (512, 512)
TEST_SIZE_HW = (512, 512)
ZHU_EXCLUDED_NUMBERS = ("0059", "0178", "0228", "0267", "0295", "0310", "0285", "0276", "0303")
ZHU_EXCLUDED_IDS = tuple(f"CHNCXR_{n}_0" for n in ZHU_EXCLUDED_NUMBERS)
EXCLUSIONS = (None, "zhu")


def load_chest(
    root: str | os.PathLike,
    exclusion: str | None = None,
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read a CHEST root with the built-in descriptor ``descriptors/chest.yaml``.

    Use :func:`xlm_core.datasets.load_dataset` for a :class:`LandmarkSet`.

    Args:
        root: the dataset root (``pngs/`` and ``labels/``).
        exclusion: None (the papers' 229 train / 50 test) or ``"zhu"`` (Zhu et al.'s 9
            exclusions, :data:`ZHU_EXCLUDED_IDS`).
        verify_images: decode every image (finds truncated files; slower).
        log: a problem log to add to; None: a new one.

    Returns:
        ``(usable samples, problems, settings)``; ``settings`` holds ``scale``,
        ``thresholds``, sizes, paper split counts, names.

    Raises:
        XLMError: for an unknown exclusion or a wrong root.
    """
    from xlm_core.datasets.descriptor import builtin_descriptor
    from xlm_core.datasets.engine import load_described

    if exclusion not in EXCLUSIONS:
        raise XLMError(f"chest exclusion must be one of {EXCLUSIONS}, got {exclusion!r}")
    return load_described(builtin_descriptor("chest"), root, exclusion=exclusion,
                          verify_images=verify_images, log=log)
