"""Annotation formats a descriptor can name: one reader per format, no policy.

Per-image formats (one file per image, pattern with ``{id}``) return a :class:`Parsed` for
one file; table formats (one file for many images) return ``{image_id: TableEntry}``. A
reader never decides whether an image is used: it reports what it found, in words that
name the problem, and :mod:`xlm_core.datasets.engine` applies the descriptor's rules.
Coordinates are ``(L, 2)`` float64 ``(x, y)``: pixels, or fractions of (W, H) for ``ratio``.

The per-format parsers (ISBI text, Zhu's ratio labels, Payer's CSV rows, LabelMe points, the
landmark CSV's rows) live here too, so that the loaders (``head``, ``hand``, ``chest``,
``generic``) and the engine import this module and it imports none of them.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.check import ProblemLog, parse_number, parse_xy_values


@dataclass
class Parsed:
    """One annotation of one image.

    ``xy is None and not errors``: already reported elsewhere.

    Attributes:
        xy: ``(L, 2)`` float64 (x, y) in the format's units, or None when unusable.
        errors: what is wrong (not yet logged).
        n_found: how many landmarks the file holds (None: unknown).
    """

    xy: np.ndarray | None
    errors: list[str]
    n_found: int | None = None


@dataclass
class TableEntry:
    """One image's rows in a table.

    Attributes:
        parsed: the image's annotation.
        context: prefixes messages about the rows, e.g. ``"row 3 (id 1003): "``.
        orphan_context: the same when the id has no image, e.g.
            ``"row 3 (id 1003, no image): "``.
    """

    parsed: Parsed
    context: str  # e.g. "row 3 (id 1003): "
    orphan_context: str  # the same when the id has no image, e.g. "row 3 (id 1003, no image): "


# --------------------------------------------------------------------------- parsers


def isbi_values(text: str) -> list[str]:
    """The coordinate fields ``[x1, y1, x2, y2, ...]`` of an ISBI annotation text.

    Lines with two fields (comma or space separated) are landmark lines; the first line
    with another number of fields ends them (the class labels follow).

    Args:
        text: the file's text.

    Returns:
        The fields as strings, two per landmark line.
    """
    values: list[str] = []
    for line in text.splitlines():
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields:
            continue
        if len(fields) != 2:
            break
        values.extend(fields)
    return values


def parse_label(path: Path, n_landmarks: int) -> tuple[np.ndarray | None, list[str]]:
    """Read a Zhu et al. label file: the landmark count, then ``x_ratio y_ratio`` lines.

    Args:
        path: the label file.
        n_landmarks: landmarks expected.

    Returns:
        ``((L, 2) float64 (x_ratio, y_ratio), [])`` or ``(None, errors)``.
    """
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


def read_rows(csv_path: Path, log: ProblemLog) -> tuple[dict[str, tuple[int, list[str]]], set[str]]:
    """The rows of a header-less ``id,x1,y1,...`` table (Payer et al.'s all.csv).

    Every row of a duplicated id is reported (fatal) and the id is dropped; a header line
    (no numeric coordinate) is skipped.

    Args:
        csv_path: the table.
        log: where problems are reported.

    Returns:
        ``({id: (row number, values)}, dropped ids)``.

    Raises:
        XLMError: when the file cannot be read.
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
                if number == 1 and _looks_like_header(fields):
                    log.add(csv_path, f"row 1 looks like a header ({', '.join(fields[:3])}, ...): "
                            f"{csv_path.name} has no header row (id,x1,y1,... in pixels); delete that line")
                    continue
                if key in rows or key in dropped:
                    first = rows.pop(key, None)
                    if first is not None:
                        log.add(csv_path, f"row {first[0]}: duplicate id {key!r}; none used", image_id=key)
                    log.add(csv_path, f"row {number}: duplicate id {key!r}; none used", image_id=key)
                    dropped.add(key)
                    continue
                rows[key] = (number, fields[1:])
    except OSError as exc:
        raise XLMError(f"{csv_path}: cannot read landmark table ({exc.strerror or exc})") from None
    return rows, dropped


def _looks_like_header(fields: list[str]) -> bool:
    """True when no coordinate field of a row is a number (``id,x1,y1,...``): a header line."""
    def number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    return len(fields) > 1 and not any(number(f) for f in fields[1:])


_NUMBERED = re.compile(r"^\s*(?:[A-Za-z]+[\s_\-]*)?0*(\d+)\s*$")


def label_index(label: str, names: list[str] | None) -> int | None:
    """0-based landmark index of a label.

    Args:
        label: a landmark name (when ``names`` is given) or a number, optionally prefixed with
            letters (``"L3"``, ``"landmark_03"``).
        names: the landmark names (matched case-insensitively), or None.

    Returns:
        The index, or None when the label is neither.
    """
    text = str(label).strip()
    if names:
        lowered = [n.lower() for n in names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
    match = _NUMBERED.match(text)
    if match and int(match.group(1)) >= 1:
        return int(match.group(1)) - 1
    return None


def complete_points(
    log: ProblemLog, where: Path, points: dict[int, list[tuple[float, float]]], n_landmarks: int,
    context: str = "",
) -> np.ndarray | None:
    """Check that landmarks 1..n each occur exactly once, with finite coordinates.

    Args:
        log: where problems are reported.
        where: the annotation file (named in the problems).
        points: ``{0-based landmark: [(x, y), ...]}``.
        n_landmarks: L.
        context: prefix of each message.

    Returns:
        ``(L, 2)`` float64 (x, y), or None when a landmark is missing, repeated, beyond L or not
        finite (each reported).
    """
    usable = True
    missing = [i + 1 for i in range(n_landmarks) if i not in points]
    if missing:
        log.add(where, f"{context}{n_landmarks - len(missing)} of {n_landmarks} landmarks; missing {missing}")
        usable = False
    repeated = sorted(i + 1 for i, v in points.items() if len(v) > 1)
    if repeated:
        shown = "; ".join(f"{i} at " + ", ".join(f"({x:g}, {y:g})" for x, y in points[i - 1])
                          for i in repeated)  # the points, so a reader can see which one is wrong
        log.add(where, f"{context}landmarks given more than once: {repeated} ({shown}; none taken)")
        usable = False
    extra = sorted(i + 1 for i in points if i >= n_landmarks)
    if extra:
        log.add(where, f"{context}landmark numbers beyond {n_landmarks}: {extra}")
        usable = False
    bad = sorted(i + 1 for i, v in points.items() if any(not np.isfinite(c).all() for c in v))
    if bad:
        log.add(where, f"{context}NaN or infinite coordinates for landmarks {bad}")
        usable = False
    if not usable:
        return None
    return np.asarray([points[i][0] for i in range(n_landmarks)], dtype=np.float64)


def labelme_points(
    log: ProblemLog, json_path: Path, landmark_names: list[str] | None
) -> tuple[dict | None, dict[int, list[tuple[float, float]]]]:
    """The points of a LabelMe JSON file, by landmark.

    Every shape must be one ``[x, y]`` point labelled with a landmark name or number.

    Args:
        log: where problems are reported.
        json_path: the LabelMe file.
        landmark_names: the names labels may use, or None (numbers only).

    Returns:
        ``(document, {0-based landmark: [(x, y), ...]})``; the document is None when the file is
        unreadable, not LabelMe, or has a bad shape (each reported).
    """
    try:
        doc = json.loads(json_path.read_text(errors="replace"))
    except (OSError, ValueError) as exc:
        log.add(json_path, f"unreadable LabelMe JSON ({exc})")
        return None, {}
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        log.add(json_path, "not a LabelMe file (no 'shapes' list)")
        return None, {}
    points: dict[int, list[tuple[float, float]]] = {}
    ok = True
    for k, shape in enumerate(doc["shapes"]):
        label = str(shape.get("label", "")) if isinstance(shape, dict) else ""
        index = label_index(label, landmark_names)
        if index is None:
            log.add(json_path, f"shape {k}: label {label!r} is neither a landmark name nor a number")
            ok = False
            continue
        pts = shape.get("points")
        if not isinstance(pts, list) or len(pts) != 1 or not isinstance(pts[0], list) or len(pts[0]) != 2:
            log.add(json_path, f"shape {k} ({label!r}): expected one [x, y] point, got {pts!r}")
            ok = False
            continue
        values = [v if isinstance(v, (int, float)) else parse_number(str(v)) for v in pts[0]]
        if any(v is None for v in values):
            log.add(json_path, f"shape {k} ({label!r}): non-numeric coordinates {pts[0]!r}")
            ok = False
            continue
        points.setdefault(index, []).append((float(values[0]), float(values[1])))
    return (doc if ok else None), points


def landmark_rows(
    log: ProblemLog, csv_path: Path, landmark_names: list[str] | None = None
) -> tuple[dict[str, dict[int, list[tuple[float, float]]]], set[str]]:
    """The rows of an ``image_id,landmark,x,y`` CSV (with header), by image and landmark.

    Args:
        log: where problems are reported.
        csv_path: the CSV file.
        landmark_names: when given, ``landmark`` may be one of these names; else a 1-based
            number.

    Returns:
        ``({image_id: {0-based landmark: [(x, y), ...]}}, ids whose rows all parsed)``.

    Raises:
        XLMError: when the file cannot be read or lacks a needed column.
    """
    points: dict[str, dict[int, list[tuple[float, float]]]] = {}
    broken: set[str] = set()
    try:
        with open(csv_path, newline="", errors="replace") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            needed = {"image_id", "landmark", "x", "y"}
            if not needed <= set(header):
                raise XLMError(f"{csv_path}: header must contain image_id,landmark,x,y; got {header}")
            for number, row in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k}
                image_id = row["image_id"]
                if not image_id:
                    log.add(csv_path, f"row {number}: empty image_id")
                    continue
                points.setdefault(image_id, {})
                index = parse_number(row["landmark"])
                if index is None and landmark_names:
                    named = label_index(row["landmark"], landmark_names)
                    index = None if named is None else named + 1
                x, y = parse_number(row["x"]), parse_number(row["y"])
                if index is None or not float(index).is_integer() or index < 1:
                    log.add(csv_path, f"row {number} (image_id {image_id!r}): landmark must be a "
                            f"1-based integer, got {row['landmark']!r}", image_id=image_id)
                    broken.add(image_id)
                    continue
                if x is None or y is None:
                    log.add(csv_path, f"row {number} (image_id {image_id!r}): non-numeric coordinates "
                            f"x={row['x']!r} y={row['y']!r}", image_id=image_id)
                    broken.add(image_id)
                    continue
                points[image_id].setdefault(int(index) - 1, []).append((x, y))
    except OSError as exc:
        raise XLMError(f"{csv_path}: cannot read landmark CSV ({exc.strerror or exc})") from None
    return points, {i for i in points if i not in broken}


# --------------------------------------------------------------------------- per-image files


def read_isbi_txt(path: Path, names: list[str], by_name: bool) -> Parsed:
    """ISBI 2015: leading ``x,y`` lines (comma or space), then class-label lines.

    Args:
        path: the annotation file of one image.
        names: the L landmark names.
        by_name: labels are landmark names (else 1-based numbers); unused by this format.

    Returns:
        :class:`Parsed` (``xy`` in the file's units).
    """
    try:
        values = isbi_values(path.read_text(errors="replace"))
    except OSError as exc:
        return Parsed(None, [f"unreadable annotation ({exc.strerror or exc})"])
    xy, errors = parse_xy_values(values, len(names))
    return Parsed(xy, [f"annotation: {e}" for e in errors], len(values) // 2)


def read_ratio_txt(path: Path, names: list[str], by_name: bool) -> Parsed:
    """Zhu et al.'s label file: the count, then ``x_ratio y_ratio`` lines.

    Args:
        path: the annotation file of one image.
        names: the L landmark names.
        by_name: labels are landmark names (else 1-based numbers); unused by this format.

    Returns:
        :class:`Parsed` (``xy`` in the file's units).
    """
    xy, errors = parse_label(path, len(names))
    n_found = None
    try:
        first = path.read_text(errors="replace").split(None, 1)
        n_found = int(first[0]) if first else 0
    except (OSError, ValueError):
        pass
    return Parsed(xy, errors, n_found)


def read_labelme(path: Path, names: list[str], by_name: bool) -> Parsed:
    """LabelMe points; labels are landmark names (``by_name``) or 1-based numbers.

    Args:
        path: the annotation file of one image.
        names: the L landmark names.
        by_name: labels are landmark names (else 1-based numbers).

    Returns:
        :class:`Parsed` (``xy`` in the file's units).
    """
    log = ProblemLog(path.parent)
    doc, points = labelme_points(log, path, names if by_name else None)
    errors = [p.problem for p in log.problems]
    if doc is None:
        return Parsed(None, errors or ["not usable"], len(points) or None)
    log = ProblemLog(path.parent)
    xy = complete_points(log, path, points, len(names))
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
    """``id,x1,y1,...`` rows without header (Payer et al.). A duplicated id is reported, dropped.

    Args:
        path: the table file.
        log: where file-level problems are reported.
        names: the L landmark names.
        by_name: labels are landmark names (unused: the columns are in landmark order).

    Returns:
        ``{image id: TableEntry}``.
    """
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
    """``image_id,landmark,x,y`` with header; landmark a 1-based number or (``by_name``) a name.

    Args:
        path: the table file.
        log: where file-level problems are reported.
        names: the L landmark names.
        by_name: labels are landmark names (else 1-based numbers).

    Returns:
        ``{image id: TableEntry}``.
    """
    points_by_id, rows_ok = landmark_rows(log, path, names if by_name else None)
    entries = {}
    for image_id, points in points_by_id.items():
        context = f"image_id {image_id!r}: "
        if image_id not in rows_ok:
            entries[image_id] = TableEntry(Parsed(None, []), context, context)
            continue
        local = ProblemLog(path.parent)
        xy = complete_points(local, path, points, len(names))
        entries[image_id] = TableEntry(Parsed(xy, [p.problem for p in local.problems], len(points)),
                                       context, f"image_id {image_id!r} (no image): ")
    return entries


def _lines(path: Path, what: str) -> list[tuple[int, str]]:
    """``[(line number, stripped text)]`` of the non-blank lines of a text file (CRLF or LF)."""
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise XLMError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    return [(k, line.strip()) for k, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_aasce_csv(path: Path, log: ProblemLog, names: list[str], by_name: bool,
                   index: Path | None = None) -> dict[str, TableEntry]:
    """AASCE / SpineWeb 16 ``landmarks.csv``: one header-less row an image, L x then L y ratios.

    Row ``k`` belongs to the image named on line ``k`` of ``index`` (``filenames.csv``, one image
    file name a line); the image id is that name's stem. A name listed twice is reported and
    none of its rows is used.

    Args:
        path: ``landmarks.csv``.
        log: where file-level problems are reported.
        names: the L landmark names.
        by_name: unused (the columns are in landmark order).
        index: ``filenames.csv``.

    Returns:
        ``{image id: TableEntry}`` with ``xy`` in ratios of (W, H).

    Raises:
        XLMError: naming both files when the index is missing or the two do not have one row
            per image each (rows cannot be paired).
    """
    if index is None or not index.is_file():
        raise XLMError(f"{path}: the file naming its rows' images ({index}) does not exist")
    rows = _lines(path, "AASCE landmark table")
    files = _lines(index, "AASCE file name list")
    if len(rows) != len(files):
        raise XLMError(f"{path}: {len(rows)} rows, but {index} names {len(files)} images; rows pair "
                       "with names line by line (a header line, or a file from another split?)")
    n = len(names)
    by_id: dict[str, list[int]] = {}
    for k, (_, name) in enumerate(files):
        by_id.setdefault(Path(name).stem, []).append(k)
    entries: dict[str, TableEntry] = {}
    for key, positions in by_id.items():
        if len(positions) > 1:
            shown = ", ".join(str(files[k][0]) for k in positions)
            log.add(index, f"lines {shown}: image {key!r} named {len(positions)} times; none of its rows used",
                    image_id=key)
            entries[key] = TableEntry(Parsed(None, []), "", "")
            continue
        number, text = rows[positions[0]]
        values = [v.strip() for v in text.split(",")]
        if len(values) == 2 * n:  # x1..xL, y1..yL -> x1, y1, x2, y2, ...
            values = [v for pair in zip(values[:n], values[n:]) for v in pair]
        xy, errors = parse_xy_values(values, n)
        entries[key] = TableEntry(Parsed(xy, errors, len(values) // 2),
                                  f"row {number} ({files[positions[0]][1]}): ",
                                  f"row {number} ({files[positions[0]][1]}, no image): ")
    return entries


TABLE_READERS: dict[str, Callable[..., dict[str, TableEntry]]] = {
    "payer_csv": read_payer_csv,
    "landmark_csv": read_landmark_csv,
    "aasce_csv": read_aasce_csv,
}
