"""HEAD: the ISBI 2015 cephalometric challenge (400 lateral cephalograms, 19 landmarks).

Layout::

    ROOT/RawImage/{TrainingData,Test1Data,Test2Data}/NNN.bmp
    ROOT/AnnotationsByMD/400_senior/NNN.txt   19 lines "x,y" (pixels), then 8 label lines
    ROOT/AnnotationsByMD/400_junior/NNN.txt

Ground truth is the mean of the two annotators (``annotator="mean"``, the paper's choice)
or one of them. Errors are in mm at 0.1 mm per original pixel; a synthetic root (drawn
smaller than 1935x2400) records its own ``mm_per_px`` in ``SYNTHETIC.json``. Split: the
first 150 ids (sorted) train, the rest test.

These rules live in the built-in descriptor ``descriptors/head.yaml``, read by the one
loader of every dataset (:mod:`xlm_core.datasets.engine`); this module keeps the format's
parser and the constants.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.base import Sample
from xlm_core.datasets.check import ProblemLog, parse_xy_values
from xlm_core.datasets.formats import isbi_values

N_LANDMARKS = 19
LANDMARK_NAMES = [
    "sella",
    "nasion",
    "orbitale",
    "porion",
    "subspinale (A point)",
    "supramentale (B point)",
    "pogonion",
    "menton",
    "gnathion",
    "gonion",
    "lower incisal incision",
    "upper incisal incision",
    "upper lip",
    "lower lip",
    "subnasale",
    "soft tissue pogonion",
    "posterior nasal spine",
    "anterior nasal spine",
    "articulare",
]
MM_PER_PX = 0.1
THRESHOLDS_MM = (2.0, 2.5, 3.0, 4.0)
PAPER_TRAIN, PAPER_TOTAL = 150, 400
TRAIN_SIZE_HW = (512, 512)
TEST_SIZE_HW = (512, 416)
ANNOTATORS = ("mean", "senior", "junior")
ANNOTATION_DIRS = {"senior": "400_senior", "junior": "400_junior"}


def parse_annotation(path: Path, n_landmarks: int = N_LANDMARKS) -> tuple[np.ndarray | None, list[str]]:
    """Read one ISBI annotation file: the leading ``x,y`` lines, then label lines.

    Lines with two fields (comma or space separated) are landmark lines; the first line with one
    field ends them (the 8 class labels follow).

    Args:
        path: the annotation file.
        n_landmarks: landmarks expected.

    Returns:
        ``((L, 2) float64 (x, y) px, [])``, or ``(None, [errors])`` for an unreadable or
        malformed file.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return None, [f"unreadable annotation ({exc.strerror or exc})"]
    xy, errors = parse_xy_values(isbi_values(text), n_landmarks)
    return xy, [f"annotation: {e}" for e in errors]


def load_head(
    root: str | os.PathLike,
    annotator: str = "mean",
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read a HEAD root with the built-in descriptor ``descriptors/head.yaml``.

    Use :func:`xlm_core.datasets.load_dataset` for a :class:`LandmarkSet`.

    Args:
        root: the dataset root (``RawImage/`` and ``AnnotationsByMD/``).
        annotator: ``"mean"`` (of senior and junior, the paper's ground truth), ``"senior"``
            or ``"junior"``.
        verify_images: decode every image (finds truncated files; slower).
        log: a problem log to add to; None: a new one.

    Returns:
        ``(usable samples, problems, settings)``; ``settings`` holds ``scale``,
        ``thresholds``, sizes, paper split counts, names.

    Raises:
        XLMError: for an unknown annotator or a wrong root.
    """
    from xlm_core.datasets.descriptor import builtin_descriptor
    from xlm_core.datasets.engine import load_described

    if annotator not in ANNOTATORS:
        raise XLMError(f"head annotator must be one of {ANNOTATORS}, got {annotator!r}")
    return load_described(builtin_descriptor("head"), root, annotator=annotator,
                          verify_images=verify_images, log=log)
