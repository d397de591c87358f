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
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.base import Sample, Scale
from xlm_core.datasets.check import (
    ProblemLog,
    parse_xy_values,
    read_synthetic_marker,
    require_file,
    require_root,
    validate_sample,
)

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
_FOLDERS = {"jpg": ("jpg", (".jpg", ".jpeg")), "mha": ("mha", (".mha", ".mhd"))}


def parse_wrist_pair(value) -> tuple[int, int]:
    """Accept ``(a, b)`` 0-based, or the names ``"payer"`` / ``"zhu"``."""
    if isinstance(value, str):
        named = {"payer": WRIST_PAIR_PAYER, "zhu": WRIST_PAIR_ZHU}
        if value.lower() in named:
            return named[value.lower()]
        raise XLMError(f"wrist_pair must be two 0-based indices, 'payer' or 'zhu', got {value!r}")
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise XLMError(f"wrist_pair must be two 0-based landmark indices, got {value!r}") from None
    if a == b or not (0 <= a < N_LANDMARKS and 0 <= b < N_LANDMARKS):
        raise XLMError(f"wrist_pair must be two different indices in 0..{N_LANDMARKS - 1}, got {value!r}")
    return a, b


def _scan(root: Path, image_format: str) -> dict[str, Path]:
    """``{id: image path}`` following the format preference."""
    found: dict[str, Path] = {}
    order = ["jpg", "mha"] if image_format == "auto" else [image_format]
    for fmt in order:
        folder, extensions = _FOLDERS[fmt]
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.is_file() and path.suffix.lower() in extensions:
                found.setdefault(path.stem, path)
    return found


def read_rows(csv_path: Path, log: ProblemLog) -> tuple[dict[str, tuple[int, list[str]]], set[str]]:
    """``({id: (row number, values)}, dropped ids)`` from all.csv.

    Every row of a duplicated id is reported (fatal) and the id is dropped.
    """
    rows: dict[str, tuple[int, list[str]]] = {}
    dropped: set[str] = set()
    try:
        with open(csv_path, newline="", errors="replace") as fh:
            for number, fields in enumerate(csv.reader(fh), start=1):
                fields = [f.strip() for f in fields]
                while fields and fields[-1] == "":
                    fields.pop()
                if not fields:
                    continue
                key = fields[0]
                if key in rows or key in dropped:
                    first = rows.pop(key, None)
                    if first is not None:
                        log.add(csv_path, f"row {first[0]}: duplicate id {key!r}; none used")
                    log.add(csv_path, f"row {number}: duplicate id {key!r}; none used")
                    dropped.add(key)
                    continue
                rows[key] = (number, fields[1:])
    except OSError as exc:
        raise XLMError(f"{csv_path}: cannot read landmark table ({exc.strerror or exc})") from None
    return rows, dropped


def load_hand(
    root: str | os.PathLike,
    image_format: str = "auto",
    wrist_pair=WRIST_PAIR_PAYER,
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read a HAND root. Returns ``(usable samples, problems, settings)``."""
    root = require_root(root)
    if image_format not in IMAGE_FORMATS:
        raise XLMError(f"hand image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    pair = parse_wrist_pair(wrist_pair)
    log = log or ProblemLog(root)
    csv_path = require_file(root / "all.csv", "HAND landmark table")
    folders = ["jpg", "mha"] if image_format == "auto" else [image_format]
    if not any((root / f).is_dir() for f in folders):
        raise XLMError(
            f"HAND images: expected folder {root / folders[0]}"
            + (f" or {root / folders[1]}" if len(folders) > 1 else "")
            + " does not exist (wrong dataset root?)"
        )

    images = _scan(root, image_format)
    rows, dropped = read_rows(csv_path, log)
    without_image = [key for key in rows if key not in images]
    log.summarise(csv_path, without_image, "rows of all.csv have no image (skipped)")
    for key in without_image:  # still worth knowing about, though nothing is lost now
        number, values = rows[key]
        xy, errors = parse_xy_values(values, N_LANDMARKS)
        for error in errors:
            log.add(csv_path, f"row {number} (id {key}, no image): {error}", fatal=False)
        if xy is not None:
            low = np.flatnonzero((xy < 1).any(axis=1))
            if low.size:
                shown = ", ".join(f"{i + 1} at ({xy[i, 0]:g}, {xy[i, 1]:g})" for i in low)
                log.add(csv_path, f"row {number} (id {key}, no image): landmarks on the image "
                        f"border (a missing point?): {shown}", fatal=False)

    samples: list[Sample] = []
    for image_id, image_path in sorted(images.items()):
        if image_id not in rows:
            if image_id not in dropped:
                log.add(image_path, "image has no row in all.csv (not annotated; skipped)", fatal=False)
            continue
        number, values = rows[image_id]
        xy, errors = parse_xy_values(values, N_LANDMARKS)
        for error in errors:
            log.add(csv_path, f"row {number} (id {image_id}): {error}")
        if xy is None:
            continue
        if np.linalg.norm(xy[pair[0]] - xy[pair[1]]) <= 0:
            log.add(csv_path, f"row {number} (id {image_id}): wrist landmarks {pair[0] + 1} and "
                    f"{pair[1] + 1} coincide; no mm scale")
            continue
        size_wh = validate_sample(
            log, image_path, xy, verify_images, annotation=csv_path,
            context=f"row {number} (id {image_id}): ",
        )
        if size_wh is not None:
            samples.append(Sample(id=image_id, image=image_path, landmarks=xy, size_wh=size_wh))

    marker = read_synthetic_marker(root)
    settings = {
        "landmark_names": list(LANDMARK_NAMES),
        "scale": Scale(unit="mm", wrist_pair=pair, wrist_mm=WRIST_MM),
        "thresholds": THRESHOLDS_MM,
        "train_size": TRAIN_SIZE_HW,
        "test_size": TEST_SIZE_HW,
        "paper_split": (PAPER_TRAIN, PAPER_TOTAL),
        "synthetic": marker is not None,
        "options": {"image_format": image_format, "wrist_pair": list(pair)},
    }
    return samples, log, settings
