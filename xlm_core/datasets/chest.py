"""CHEST: Shenzhen chest x-rays with Zhu et al.'s 6 landmarks.

Layout::

    ROOT/pngs/CHNCXR_NNNN_0.png
    ROOT/labels/CHNCXR_NNNN_0.txt   line 1 "6", then 6 lines "x_ratio y_ratio"

Ratios are fractions of the image width and height: ``x_px = x_ratio * W``,
``y_px = y_ratio * H``. Errors are in original-image pixels. Split: the paper's first 229
(sorted ids) train, last 50 test. ``exclusion="zhu"`` drops the 9 ids Zhu et al.'s code
leaves out, then splits first 229 / the remaining 41, as that code does.
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
    parse_xy_values,
    probe_image,
    read_synthetic_marker,
    record_landmark_problems,
    require_dir,
    require_root,
)
from xlm_core.imageio import is_image_file

N_LANDMARKS = 6
LANDMARK_NAMES = [f"L{i}" for i in range(1, N_LANDMARKS + 1)]
THRESHOLDS_PX = (3.0, 6.0, 9.0)
PAPER_TRAIN, PAPER_TOTAL = 229, 279
TRAIN_SIZE_HW = (512, 512)
TEST_SIZE_HW = (512, 512)
ZHU_EXCLUDED_NUMBERS = ("0059", "0178", "0228", "0267", "0295", "0310", "0285", "0276", "0303")
ZHU_EXCLUDED_IDS = tuple(f"CHNCXR_{n}_0" for n in ZHU_EXCLUDED_NUMBERS)
EXCLUSIONS = (None, "zhu")


def parse_label(path: Path, n_landmarks: int = N_LANDMARKS) -> tuple[np.ndarray | None, list[str]]:
    """Read a label file. Returns ``((L, 2) float64 (x_ratio, y_ratio), [])`` or ``(None, errors)``."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError as exc:
        return None, [f"unreadable label file ({exc.strerror or exc})"]
    if not lines:
        return None, ["empty label file"]
    try:
        declared = int(lines[0])
    except ValueError:
        return None, [f"line 1 must be the landmark count {n_landmarks}, got {lines[0]!r}"]
    errors = []
    if declared != n_landmarks:
        errors.append(f"line 1 declares {declared} landmarks, expected {n_landmarks}")
    point_lines = lines[1:]
    if len(point_lines) != declared:
        errors.append(f"{len(point_lines)} coordinate lines after the count {declared}")
    values: list[str] = []
    for number, line in enumerate(point_lines, start=2):
        fields = [f for f in re.split(r"[,\s]+", line) if f]
        if len(fields) != 2:
            errors.append(f"line {number}: expected 'x_ratio y_ratio', got {line!r}")
        values.extend(fields)
    if errors:
        return None, errors
    return parse_xy_values(values, n_landmarks)


def load_chest(
    root: str | os.PathLike,
    exclusion: str | None = None,
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read a CHEST root. Returns ``(usable samples, problems, settings)``."""
    root = require_root(root)
    if exclusion not in EXCLUSIONS:
        raise XLMError(f"chest exclusion must be one of {EXCLUSIONS}, got {exclusion!r}")
    log = log or ProblemLog(root)
    png_dir = require_dir(root / "pngs", "CHEST images")
    label_dir = require_dir(root / "labels", "CHEST labels")
    excluded = set(ZHU_EXCLUDED_IDS) if exclusion == "zhu" else set()

    images: dict[str, Path] = {}
    for path in sorted(png_dir.iterdir()):
        if path.is_file() and is_image_file(path):
            if path.stem in images:
                log.add(path, f"duplicate id {path.stem!r}: also {log.name(images[path.stem])}; none used")
                log.add(images[path.stem], f"duplicate id {path.stem!r}: also {log.name(path)}; none used")
                images[path.stem] = None  # type: ignore[assignment]
                continue
            images[path.stem] = path
    labels = {p.stem: p for p in sorted(label_dir.glob("*.txt"))}
    orphans = [key for key in labels if key not in images and key not in excluded]
    log.summarise(label_dir, orphans, "label files have no image in pngs/ (skipped)")

    samples: list[Sample] = []
    for image_id, image_path in sorted(images.items()):
        if image_path is None or image_id in excluded:
            continue
        label_path = labels.get(image_id)
        if label_path is None:
            log.add(image_path, "image without label file (not annotated; skipped)", fatal=False)
            continue
        ratios, errors = parse_label(label_path)
        for error in errors:
            log.add(label_path, error)
        if ratios is None:
            continue
        size_wh, reason = probe_image(image_path, verify_images)
        if size_wh is None:
            log.add(image_path, f"unreadable image: {reason}")
            continue
        xy = ratios * np.asarray(size_wh, dtype=np.float64)
        if record_landmark_problems(log, label_path, xy, size_wh):
            samples.append(Sample(id=image_id, image=image_path, landmarks=xy, size_wh=size_wh))

    marker = read_synthetic_marker(root)
    paper_total = PAPER_TOTAL - len(ZHU_EXCLUDED_IDS) if exclusion == "zhu" else PAPER_TOTAL
    settings = {
        "landmark_names": list(LANDMARK_NAMES),
        "scale": Scale(unit="px"),
        "thresholds": THRESHOLDS_PX,
        "train_size": TRAIN_SIZE_HW,
        "test_size": TEST_SIZE_HW,
        "paper_split": (PAPER_TRAIN, paper_total),
        "synthetic": marker is not None,
        "options": {"exclusion": exclusion},
    }
    return samples, log, settings

