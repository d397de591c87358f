"""Annotation formats a descriptor can name: one reader per format, no policy.

Per-image formats (one file per image, pattern with ``{id}``) return a :class:`Parsed` for
one file; table formats (one file for many images) return ``{image_id: TableEntry}``. A
reader never decides whether an image is used: it reports what it found, in words that
name the problem, and :mod:`xlm_core.datasets.engine` applies the descriptor's rules.
Coordinates are ``(L, 2)`` float64 ``(x, y)``: pixels, or fractions of (W, H) for ``ratio``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlm_core.datasets.check import ProblemLog, parse_xy_values


@dataclass
class Parsed:
    """One annotation of one image. ``xy`` ``(L, 2)`` or ``None`` when unusable.

    ``errors``: what is wrong (not yet logged); ``n_found``: how many landmarks the file
    holds (``None`` unknown). ``xy is None and not errors``: already reported elsewhere.
    """

    xy: np.ndarray | None
    errors: list[str]
    n_found: int | None = None


@dataclass
class TableEntry:
    """One image's rows in a table. ``context`` prefixes messages about them."""

    parsed: Parsed
    context: str  # e.g. "row 3 (id 1003): "
    orphan_context: str  # the same when the id has no image, e.g. "row 3 (id 1003, no image): "


# --------------------------------------------------------------------------- per-image files


def read_isbi_txt(path: Path, names: list[str], by_name: bool) -> Parsed:
    """ISBI 2015: leading ``x,y`` lines (comma or space), then class-label lines."""
    from xlm_core.datasets.head import isbi_values

    try:
        values = isbi_values(path.read_text(errors="replace"))
    except OSError as exc:
        return Parsed(None, [f"unreadable annotation ({exc.strerror or exc})"])
    xy, errors = parse_xy_values(values, len(names))
    return Parsed(xy, [f"annotation: {e}" for e in errors], len(values) // 2)


def read_ratio_txt(path: Path, names: list[str], by_name: bool) -> Parsed:
    """Zhu et al.'s label file: the count, then ``x_ratio y_ratio`` lines."""
    from xlm_core.datasets.chest import parse_label

    xy, errors = parse_label(path, len(names))
    n_found = None
    try:
        first = path.read_text(errors="replace").split(None, 1)
        n_found = int(first[0]) if first else 0
    except (OSError, ValueError):
        pass
    return Parsed(xy, errors, n_found)


def read_labelme(path: Path, names: list[str], by_name: bool) -> Parsed:
    """LabelMe points; labels are landmark names (``by_name``) or 1-based numbers."""
    from xlm_core.datasets.generic import _complete, _labelme_points

    log = ProblemLog(path.parent)
    doc, points = _labelme_points(log, path, names if by_name else None)
    errors = [p.problem for p in log.problems]
    if doc is None:
        return Parsed(None, errors or ["not usable"], len(points) or None)
    log = ProblemLog(path.parent)
    xy = _complete(log, path, points, len(names))
    return Parsed(xy, [p.problem for p in log.problems], len(points))


PER_IMAGE_READERS: dict[str, Callable[[Path, list[str], bool], Parsed]] = {
    "isbi_txt": read_isbi_txt,
    "ratio_txt": read_ratio_txt,
    "labelme": read_labelme,
}

#: what a per-image annotation file is called in messages
FILE_NOUNS = {"isbi_txt": "annotation files", "ratio_txt": "label files", "labelme": "LabelMe files"}


# --------------------------------------------------------------------------- tables


def read_payer_csv(path: Path, log: ProblemLog, names: list[str], by_name: bool) -> dict[str, TableEntry]:
    """``id,x1,y1,...`` rows without header (Payer et al.). A duplicated id is reported, dropped."""
    from xlm_core.datasets.hand import read_rows

    rows, dropped = read_rows(path, log)
    entries = {}
    for key, (number, values) in rows.items():
        xy, errors = parse_xy_values(values, len(names))
        entries[key] = TableEntry(Parsed(xy, errors, len(values) // 2),
                                  f"row {number} (id {key}): ", f"row {number} (id {key}, no image): ")
    for key in dropped:
        entries[key] = TableEntry(Parsed(None, []), "", "")
    return entries


def read_landmark_csv(path: Path, log: ProblemLog, names: list[str], by_name: bool) -> dict[str, TableEntry]:
    """``image_id,landmark,x,y`` with header; landmark a 1-based number or (``by_name``) a name."""
    from xlm_core.datasets.generic import _complete, _read_landmark_rows

    points_by_id, rows_ok = _read_landmark_rows(log, path, names if by_name else None)
    entries = {}
    for image_id, points in points_by_id.items():
        context = f"image_id {image_id!r}: "
        if image_id not in rows_ok:
            entries[image_id] = TableEntry(Parsed(None, []), context, context)
            continue
        local = ProblemLog(path.parent)
        xy = _complete(local, path, points, len(names))
        entries[image_id] = TableEntry(Parsed(xy, [p.problem for p in local.problems], len(points)),
                                       context, f"image_id {image_id!r} (no image): ")
    return entries


TABLE_READERS: dict[str, Callable[[Path, ProblemLog, list[str], bool], dict[str, TableEntry]]] = {
    "payer_csv": read_payer_csv,
    "landmark_csv": read_landmark_csv,
}
