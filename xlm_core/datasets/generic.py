"""Bring your own dataset: LabelMe point files or one landmark CSV, no loader to write.

**LabelMe** (``load_dataset("labelme", ROOT)``): one ``NAME.json`` per image anywhere
under ROOT, each with ``shapes: [{"label": ..., "points": [[x, y]], "shape_type": "point"}]``.
A label names its landmark by a 1-based number (``"7"``, ``"l7"``, ``"L7"``,
``"landmark 7"``) or, when ``landmark_names`` is given, by name. The image is the JSON's
``imagePath`` (relative to the JSON), else the image file with the same stem beside it.

**Landmark CSV** (``load_dataset("landmark_csv", ROOT)``): ``ROOT/landmarks.csv`` (option
``csv``) with header ``image_id,landmark,x,y`` (landmark 1-based, x, y in pixels of the
original image); ``image_id`` is an image's file stem (or its path relative to ROOT)
among the files matched by ``images`` (a glob under ROOT, default every image file).

Options common to both: ``n_landmarks`` (default: the largest index found),
``spacing`` (mm per original pixel; ``None``: errors in px), ``thresholds`` (default
2, 2.5, 3, 4 mm or 3, 6, 9 px), ``train_size``/``test_size`` ((H, W), default 512x512),
``train`` (count or fraction, default 80 %; the first ids in natural order train).
Coordinates are taken as written: ``(x, y)`` pixels with pixel centres at integers.
"""

from __future__ import annotations

import os
from pathlib import Path

from xlm_core import XLMError
from xlm_core.datasets.base import Sample, Scale
from xlm_core.datasets.check import (
    SYNTHETIC_MARKER,
    ProblemLog,
    find_duplicates,
    read_synthetic_marker,
    report_duplicates,
    require_file,
    require_root,
    validate_sample,
)
from xlm_core.datasets.engine import THRESHOLDS_MM, THRESHOLDS_PX
from xlm_core.datasets.formats import complete_points, labelme_points, landmark_rows
from xlm_core.imageio import is_image_file


def _images_under(root: Path, pattern: str | None) -> list[Path]:
    paths = root.glob(pattern) if pattern else root.rglob("*")
    return sorted(p for p in paths if p.is_file() and is_image_file(p))


def _settings(name_options: dict, n_landmarks: int, landmark_names, spacing, thresholds,
              train_size, test_size, root: Path) -> dict:
    names = list(landmark_names) if landmark_names else [f"L{i}" for i in range(1, n_landmarks + 1)]
    if len(names) != n_landmarks:
        raise XLMError(f"{len(names)} landmark_names given for {n_landmarks} landmarks")
    if spacing is not None:
        spacing = float(spacing)
        if not spacing > 0:
            raise XLMError(f"spacing must be a positive mm per pixel, got {spacing}")
        scale = Scale(unit="mm", mm_per_px=spacing)
    else:
        scale = Scale(unit="px")
    default_thresholds = THRESHOLDS_MM if spacing is not None else THRESHOLDS_PX
    test_size = tuple(test_size) if test_size is not None else tuple(train_size)
    return {
        "landmark_names": names,
        "scale": scale,
        "thresholds": tuple(float(t) for t in (thresholds or default_thresholds)),
        "train_size": tuple(int(v) for v in train_size),
        "test_size": tuple(int(v) for v in test_size),
        "paper_split": (None, None),
        "synthetic": read_synthetic_marker(root) is not None,
        "options": name_options,
    }


def load_labelme(
    root: str | os.PathLike,
    images: str | None = None,
    n_landmarks: int | None = None,
    landmark_names: list[str] | None = None,
    spacing: float | None = None,
    thresholds: tuple[float, ...] | None = None,
    train_size: tuple[int, int] = (512, 512),
    test_size: tuple[int, int] | None = None,
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read LabelMe point files under ``root`` (every ``*.json``, recursively).

    Each file's image is its ``imagePath``, else an image file of the same stem beside it.

    Args:
        root: the dataset root.
        images: a glob of image files under ``root`` (for the "image without annotation"
            check); None: every image file.
        n_landmarks: landmarks per image; None: ``len(landmark_names)``, else the largest index
            found.
        landmark_names: L names; None: ``L1``, ``L2``, ...
        spacing: mm per original pixel (errors in mm); None: errors in pixels.
        thresholds: SDR thresholds; None: the defaults of the unit.
        train_size: ``(H, W)`` to train at.
        test_size: ``(H, W)`` to test at; None: ``train_size``.
        verify_images: decode every image (finds truncated files; slower).
        log: a problem log to add to; None: a new one.

    Returns:
        ``(usable samples, problems, settings)``; no paper split (``load_dataset`` then splits
        80:20 unless ``train`` is given).

    Raises:
        XLMError: for a missing root, no JSON file, no landmark in any file, landmark names
            that do not match the count, or a non-positive spacing.
    """
    root = require_root(root)
    log = log or ProblemLog(root)
    json_paths = sorted(p for p in root.rglob("*.json") if p.name != SYNTHETIC_MARKER)
    if not json_paths:
        raise XLMError(f"LabelMe dataset: no .json files under {root} (wrong dataset root?)")
    duplicates = find_duplicates((p.stem, p) for p in json_paths)
    report_duplicates(log, duplicates, "LabelMe files")

    parsed: list[tuple[Path, Path, dict[int, list]]] = []
    used_images: set[Path] = set()
    for json_path in json_paths:
        if json_path.stem in duplicates:
            continue
        doc, points = labelme_points(log, json_path, landmark_names)
        image_path = _labelme_image(json_path, doc)
        if image_path is None:
            log.add(json_path, "annotation without image (no imagePath and no image with this name)",
                    fatal=False)
            continue
        used_images.add(image_path.resolve())
        if doc is not None:
            parsed.append((json_path, image_path, points))

    if n_landmarks is None:
        n_landmarks = len(landmark_names) if landmark_names else max(
            (max(pts) + 1 for _, _, pts in parsed if pts), default=0
        )
    if n_landmarks < 1:
        raise XLMError(f"LabelMe dataset {root}: no landmark found in any file")

    samples: list[Sample] = []
    for json_path, image_path, points in parsed:
        log.current_id = json_path.stem  # problems found now belong to this image
        xy = complete_points(log, json_path, points, n_landmarks)
        if xy is None:
            continue
        size_wh = validate_sample(log, image_path, xy, verify_images, annotation=json_path)
        if size_wh is not None:
            samples.append(Sample(id=json_path.stem, image=image_path, landmarks=xy, size_wh=size_wh))
    log.current_id = None
    for image_path in _images_under(root, images):
        if image_path.resolve() not in used_images:
            log.add(image_path, "image without annotation (no LabelMe JSON; skipped)", fatal=False)

    options = {"images": images, "n_landmarks": n_landmarks, "spacing": spacing}
    settings = _settings(options, n_landmarks, landmark_names, spacing, thresholds,
                         train_size, test_size, root)
    return samples, log, settings


def _labelme_image(json_path: Path, doc: dict | None) -> Path | None:
    if doc is not None and isinstance(doc.get("imagePath"), str) and doc["imagePath"]:
        candidate = (json_path.parent / doc["imagePath"].replace("\\", "/"))
        if candidate.is_file():
            return candidate
    for path in sorted(json_path.parent.glob(json_path.stem + ".*")):
        if path.is_file() and is_image_file(path):
            return path
    return None


def load_landmark_csv(
    root: str | os.PathLike,
    csv: str = "landmarks.csv",
    images: str | None = None,
    n_landmarks: int | None = None,
    landmark_names: list[str] | None = None,
    spacing: float | None = None,
    thresholds: tuple[float, ...] | None = None,
    train_size: tuple[int, int] = (512, 512),
    test_size: tuple[int, int] | None = None,
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read ``image_id,landmark,x,y`` rows plus the images they name.

    An image matches an ``image_id`` by its stem or by its path relative to ``root``.

    Args:
        root: the dataset root.
        csv: the landmark CSV, relative to ``root`` or absolute.
        images: a glob of image files under ``root``; None: every image file.
        n_landmarks: landmarks per image; None: ``len(landmark_names)``, else the largest index
            found.
        landmark_names: L names; None: ``L1``, ``L2``, ...
        spacing: mm per original pixel (errors in mm); None: errors in pixels.
        thresholds: SDR thresholds; None: the defaults of the unit.
        train_size: ``(H, W)`` to train at.
        test_size: ``(H, W)`` to test at; None: ``train_size``.
        verify_images: decode every image (finds truncated files; slower).
        log: a problem log to add to; None: a new one.

    Returns:
        ``(usable samples, problems, settings)``; no paper split (``load_dataset`` then splits
        80:20 unless ``train`` is given).

    Raises:
        XLMError: for a missing root or CSV, no landmark rows, landmark names that do not
            match the count, or a non-positive spacing.
    """
    root = require_root(root)
    log = log or ProblemLog(root)
    csv_path = Path(csv) if Path(csv).is_absolute() else root / csv
    require_file(csv_path, "landmark CSV")
    image_list = _images_under(root, images)
    by_key: dict[str, list[Path]] = {}
    for path in image_list:
        by_key.setdefault(path.stem, []).append(path)
        by_key.setdefault(path.relative_to(root).as_posix(), []).append(path)

    points_by_id, rows_ok = landmark_rows(log, csv_path)
    if n_landmarks is None:
        n_landmarks = len(landmark_names) if landmark_names else max(
            (max(p) + 1 for p in points_by_id.values() if p), default=0
        )
    if n_landmarks < 1:
        raise XLMError(f"{csv_path}: no landmark rows found")

    samples: list[Sample] = []
    used: set[Path] = set()
    for image_id in points_by_id:
        log.current_id = image_id  # problems found now belong to this image
        matches = by_key.get(image_id, [])
        if len(matches) > 1:
            for path in matches:
                log.add(path, f"duplicate id {image_id!r}: {len(matches)} images match it; none used")
            used.update(matches)
            continue
        if not matches:
            log.add(csv_path, f"image_id {image_id!r}: annotation without image (skipped)", fatal=False)
            continue
        image_path = matches[0]
        used.add(image_path)
        if image_id not in rows_ok:
            continue
        xy = complete_points(log, csv_path, points_by_id[image_id], n_landmarks, context=f"image_id {image_id!r}: ")
        if xy is None:
            continue
        size_wh = validate_sample(log, image_path, xy, verify_images, annotation=csv_path,
                                  context=f"image_id {image_id!r}: ")
        if size_wh is not None:
            samples.append(Sample(id=image_id, image=image_path, landmarks=xy, size_wh=size_wh))
    log.current_id = None
    for path in image_list:
        if path not in used:
            log.add(path, "image without annotation (no row in the landmark CSV; skipped)", fatal=False)

    options = {"csv": str(csv), "images": images, "n_landmarks": n_landmarks, "spacing": spacing}
    settings = _settings(options, n_landmarks, landmark_names, spacing, thresholds,
                         train_size, test_size, root)
    return samples, log, settings


