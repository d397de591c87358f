"""SPINE: AASCE 2019 / SpineWeb 16 spine x-rays, 68 vertebra corners (public, trainable on CPU).

Layout (``boostnet_labeldata/`` as in AryanRaj315/EfficientDet.Pytorch, the official training
split)::

    ROOT/boostnet_labeldata/data/training/<name>.jpg          481 grey JPGs (names with spaces)
    ROOT/boostnet_labeldata/labels/training/filenames.csv     one image file name a line
    ROOT/boostnet_labeldata/labels/training/landmarks.csv     one row an image, same order:
                                                              68 x ratios, then 68 y ratios

``ROOT`` may also be the ``boostnet_labeldata`` folder itself. Landmark ``4k+1..4k+4`` are the
top-left, top-right, bottom-left and bottom-right corners of vertebra ``k`` (T1 first). Ratios
are fractions of the image's width and height (``x_px = x_ratio * W``); errors are in
original-image pixels (no spacing is published, and the images differ in resolution). A row
whose vertebra centres do not descend strictly from T1 to L5 is refused with the vertebrae it
swaps (the descriptor's ``order``): 24 of the 481 rows, 23 of them with L5 given above L4, known
label errors of the AASCE training set. One of them (``sunhl-1th-25-Jul-2016-49 A AP``) also has
landmark 64 at y = 1.0245 H, below the image. Cross-validation keeps the images of one series
(likely one patient) in one fold (``group_by``).

These rules live in the built-in descriptor ``descriptors/spine.yaml``; the table reader is
:func:`xlm_core.datasets.formats.read_aasce_csv`.
"""

from __future__ import annotations

import os

from xlm_core.datasets.base import Sample
from xlm_core.datasets.check import ProblemLog

SOURCE_FOLDER = "boostnet_labeldata"
N_LANDMARKS = 68
TEST_SERIES_FROM = 240  # the split rule: series number >= 240 is the test part


def load_spine(
    root: str | os.PathLike,
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read a SPINE root with the built-in descriptor ``descriptors/spine.yaml``.

    Use :func:`xlm_core.datasets.load_dataset` for a :class:`LandmarkSet`.

    Args:
        root: the ``boostnet_labeldata`` folder, or a folder holding it.
        verify_images: decode every image (finds truncated files; slower).
        log: a problem log to add to; None: a new one.

    Returns:
        ``(usable samples, problems, settings)``.

    Raises:
        XLMError: for a wrong root or a landmark table that does not pair with its file list.
    """
    from xlm_core.datasets.descriptor import builtin_descriptor
    from xlm_core.datasets.engine import load_described

    return load_described(builtin_descriptor("spine"), root, verify_images=verify_images, log=log)
