"""CEPH: Hamedan University lateral cephalograms, two readers (public, large enough to train on).

Layout (the public repository vpouramin/Cephalometric-Landmarking-public)::

    ROOT/hamedan_university_dataset/pictures/NNN.tif           1340x1671, 8-bit
    ROOT/hamedan_university_dataset/annotated by  Dr.mollabashi/NNN.json   LabelMe, labels l1..l19
    ROOT/hamedan_university_dataset/annotated by Dr.farhadifar/NNN.json

``ROOT`` may also be the ``hamedan_university_dataset`` folder itself. The 19 landmarks are
ISBI 2015's, in its order, so the set asks the paper's question (does in-domain data help?)
with ISBI as the neighbouring domain. Ground truth is the mean of both readers; an image needs
both files complete, so the 9 images with a landmark given twice or missing in a reader's file
(002 009 010 064 086 098 109 137 140) are refused, each with the file and the landmark.
The pixel spacing is not published: errors are in original-image pixels. The JSON files'
``imagePath`` (e.g. ``69.tif`` in ``064.json``) is the readers' old numbering and is not
used: a JSON annotates the picture with its own file stem, as the repository pairs them.

These rules live in the built-in descriptor ``descriptors/ceph.yaml``; the human limit on this
set (reader against reader, a reader against the mean) is
:func:`xlm_core.report.analysis.human_limit_from_dataset` with ``dataset="ceph"``.
"""

from __future__ import annotations

import os

from xlm_core import XLMError
from xlm_core.datasets.base import Sample
from xlm_core.datasets.check import ProblemLog

SOURCE_FOLDER = "hamedan_university_dataset"
N_LANDMARKS = 19
READERS = ("mollabashi", "farhadifar")
ANNOTATORS = ("mean", *READERS)
BROKEN_IDS = ("002", "009", "010", "064", "086", "098", "109", "137", "140")


def load_ceph(
    root: str | os.PathLike,
    annotator: str = "mean",
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read a CEPH root with the built-in descriptor ``descriptors/ceph.yaml``.

    Use :func:`xlm_core.datasets.load_dataset` for a :class:`LandmarkSet`.

    Args:
        root: the ``hamedan_university_dataset`` folder, or a folder holding it.
        annotator: ``"mean"`` (of both readers), ``"mollabashi"`` or ``"farhadifar"``.
        verify_images: decode every image (finds truncated files; slower).
        log: a problem log to add to; None: a new one.

    Returns:
        ``(usable samples, problems, settings)``.

    Raises:
        XLMError: for an unknown annotator or a wrong root.
    """
    from xlm_core.datasets.descriptor import builtin_descriptor
    from xlm_core.datasets.engine import load_described

    if annotator not in ANNOTATORS:
        raise XLMError(f"ceph annotator must be one of {ANNOTATORS}, got {annotator!r}")
    return load_described(builtin_descriptor("ceph"), root, annotator=annotator,
                          verify_images=verify_images, log=log)
