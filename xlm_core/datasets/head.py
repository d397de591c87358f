"""HEAD: the ISBI 2015 cephalometric challenge (400 lateral cephalograms, 19 landmarks).

Layout::

    ROOT/RawImage/{TrainingData,Test1Data,Test2Data}/NNN.bmp
    ROOT/AnnotationsByMD/400_senior/NNN.txt   19 lines "x,y" (pixels), then 8 label lines
    ROOT/AnnotationsByMD/400_junior/NNN.txt

Ground truth is the mean of the two annotators (``annotator="mean"``, the paper's choice)
or one of them. Errors are in mm at 0.1 mm per original pixel; a synthetic root (drawn
smaller than 1935x2400) records its own ``mm_per_px`` in ``SYNTHETIC.json``. Split: the
first 150 ids (sorted) train, the rest test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.base import Sample, Scale
from xlm_core.datasets.check import (
    ProblemLog,
    find_duplicates,
    parse_xy_values,
    read_synthetic_marker,
    report_duplicates,
    require_dir,
    require_root,
    validate_sample,
)
from xlm_core.imageio import is_image_file

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

    Returns ``((L, 2) float64 (x, y) px, [])`` or ``(None, [errors])``. Lines with two
    fields (comma or space separated) are landmark lines; the first line with one field
    ends them (the 8 class labels follow).
    """
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return None, [f"unreadable annotation ({exc.strerror or exc})"]
    values: list[str] = []
    for line in text.splitlines():
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields:
            continue
        if len(fields) != 2:
            break
        values.extend(fields)
    xy, errors = parse_xy_values(values, n_landmarks)
    return xy, [f"annotation: {e}" for e in errors]


def _scan_images(raw: Path) -> list[tuple[str, Path]]:
    return sorted(
        ((p.stem, p) for p in raw.rglob("*") if p.is_file() and is_image_file(p)),
        key=lambda item: str(item[1]),
    )


def load_head(
    root: str | os.PathLike,
    annotator: str = "mean",
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read a HEAD root. Returns ``(usable samples, problems, settings)``.

    ``settings`` holds ``scale``, ``thresholds``, sizes, paper split counts, names.
    Use :func:`xlm_core.datasets.load_dataset` for a :class:`LandmarkSet`.
    """
    root = require_root(root)
    if annotator not in ANNOTATORS:
        raise XLMError(f"head annotator must be one of {ANNOTATORS}, got {annotator!r}")
    log = log or ProblemLog(root)
    raw = require_dir(root / "RawImage", "HEAD (ISBI 2015) images")
    needed = ("senior", "junior") if annotator == "mean" else (annotator,)
    ann_dirs = {
        who: require_dir(
            root / "AnnotationsByMD" / ANNOTATION_DIRS[who], f"HEAD {who} annotations"
        )
        for who in needed
    }

    images = _scan_images(raw)
    duplicates = find_duplicates(images)
    report_duplicates(log, duplicates, "images")
    image_by_id = {key: path for key, path in images if key not in duplicates}

    annotations = {who: {p.stem: p for p in sorted(d.glob("*.txt"))} for who, d in ann_dirs.items()}
    annotated_ids = set().union(*(set(a) for a in annotations.values()))

    orphans = sorted(i for i in annotated_ids if i not in image_by_id and i not in duplicates)
    for who in needed:
        missing = [i for i in orphans if i in annotations[who]]
        log.summarise(ann_dirs[who], missing, "annotation files have no image in RawImage/")

    samples: list[Sample] = []
    for image_id, image_path in sorted(image_by_id.items()):
        have = {who: annotations[who].get(image_id) for who in needed}
        if not any(have.values()):
            log.add(image_path, "image without annotation (not used)", fatal=False)
            continue
        absent = [who for who, p in have.items() if p is None]
        if absent:
            log.add(image_path, f"no {' and '.join(absent)} annotation; ground truth "
                    f"{annotator!r} needs {' and '.join(needed)}")
            continue
        parsed: list[np.ndarray] = []
        for who, ann_path in have.items():
            xy, errors = parse_annotation(ann_path)
            for error in errors:
                log.add(ann_path, error)
            if xy is not None:
                parsed.append(xy)
        if len(parsed) != len(needed):
            continue
        xy = np.mean(parsed, axis=0) if len(parsed) > 1 else parsed[0]
        size_wh = validate_sample(log, image_path, xy, verify_images)
        if size_wh is not None:
            samples.append(Sample(id=image_id, image=image_path, landmarks=xy, size_wh=size_wh))

    marker = read_synthetic_marker(root)
    mm_per_px = float(marker.get("mm_per_px", MM_PER_PX)) if marker else MM_PER_PX
    settings = {
        "landmark_names": list(LANDMARK_NAMES),
        "scale": Scale(unit="mm", mm_per_px=mm_per_px),
        "thresholds": THRESHOLDS_MM,
        "train_size": TRAIN_SIZE_HW,
        "test_size": TEST_SIZE_HW,
        "paper_split": (PAPER_TRAIN, PAPER_TOTAL),
        "synthetic": marker is not None,
        "options": {"annotator": annotator},
    }
    return samples, log, settings
