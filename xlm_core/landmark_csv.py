"""The landmark CSV format used by ``xlm predict`` and ``xlm score``.

One row per landmark, header ``image_id,landmark,x,y`` (then any extra columns)::

    image_id,landmark,x,y
    001,1,835.0,996.0
    001,2,1473.0,1029.0

``landmark`` is the 1-based index in the dataset's canonical order; ``x, y`` are pixels of
the original image. ``image_id`` is kept as text (``"001"`` stays ``"001"``). Every image
must carry the same landmarks ``1..L``, each once, with finite coordinates.

Image sizes (``xlm score --protocol zhu --sizes``) use a second small CSV, header
``image_id,width,height`` (:func:`read_image_sizes`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xlm_core import XLMError
from xlm_core.io import atomic_write_text

HEADER = ("image_id", "landmark", "x", "y")


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))  # shortest text that reads back to the same float
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def write_landmark_csv(
    path: str | os.PathLike,
    landmarks: Mapping[str, Any],
    extra_columns: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Write landmarks as ``image_id,landmark,x,y`` rows, atomically, in the mapping's order.

    Args:
        path: the CSV file to write.
        landmarks: ``{image_id: (L, 2) (x, y) array}``; landmarks are written 1-based.
        extra_columns: ``{column: {image_id: value or (L,) values}}``, appended after ``y``
            (a scalar is repeated on each of the image's rows; a missing image gives an empty
            cell).

    Raises:
        XLMError: on a non-(L, 2) array or an extra column that clashes with the header.
    """
    extra = dict(extra_columns or {})
    clash = set(extra) & set(HEADER)
    if clash:
        raise XLMError(f"{path}: extra columns {sorted(clash)} clash with the header {HEADER}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*HEADER, *extra])
    for image_id, xy in landmarks.items():
        arr = np.asarray(xy, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise XLMError(
                f"{path}: landmarks of image {image_id!r} must be (L, 2), got {arr.shape}"
            )
        columns = []
        for name, per_image in extra.items():
            value = per_image.get(image_id, "")
            if np.ndim(value) == 0:
                columns.append([value] * len(arr))
            elif len(value) == len(arr):
                columns.append(list(value))
            else:
                raise XLMError(
                    f"{path}: extra column {name!r} has {len(value)} values for image {image_id!r}"
                    f" with {len(arr)} landmarks"
                )
        for k, (x, y) in enumerate(arr):
            writer.writerow([image_id, k + 1, _fmt(x), _fmt(y), *(_fmt(c[k]) for c in columns)])
    atomic_write_text(path, buf.getvalue())


def read_landmark_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a landmark CSV (``image_id,landmark,x,y``; extra columns are ignored).

    Args:
        path: the CSV file.

    Returns:
        ``{image_id: (L, 2) float64 (x, y)}`` in file order, landmark ``k`` (1-based) in row
        ``k - 1``.

    Raises:
        XLMError: naming the file (and line) on a missing file, a wrong header, a non-integer
            or non-positive landmark index, a non-numeric or non-finite coordinate, a
            duplicated (image_id, landmark), an image lacking some of the landmarks 1..L (L being
            the largest index in the file), or no rows at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise XLMError(f"{path}: cannot read landmark CSV ({exc})") from exc
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header[:4]) != HEADER:
        raise XLMError(f"{path}: line 1: header must start with {','.join(HEADER)}, got {header!r}")
    points: dict[str, dict[int, tuple[float, float]]] = {}
    first_line: dict[str, int] = {}
    for line_no, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 4:
            raise XLMError(f"{path}: line {line_no}: expected image_id,landmark,x,y, got {row!r}")
        image_id = row[0].strip()
        if not image_id:
            raise XLMError(f"{path}: line {line_no}: empty image_id")
        try:
            landmark = int(row[1])
        except ValueError:
            raise XLMError(
                f"{path}: line {line_no}: landmark {row[1]!r} is not an integer"
            ) from None
        if landmark < 1:
            raise XLMError(f"{path}: line {line_no}: landmark {landmark} must be >= 1 (1-based)")
        try:
            x, y = float(row[2]), float(row[3])
        except ValueError:
            raise XLMError(
                f"{path}: line {line_no}: x, y {row[2]!r}, {row[3]!r} are not numbers"
            ) from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise XLMError(
                f"{path}: line {line_no}: non-finite coordinate x={row[2]!r} y={row[3]!r}"
            )
        per_image = points.setdefault(image_id, {})
        first_line.setdefault(image_id, line_no)
        if landmark in per_image:
            raise XLMError(
                f"{path}: line {line_no}: duplicate landmark {landmark} for image {image_id!r}"
            )
        per_image[landmark] = (x, y)
    if not points:
        raise XLMError(f"{path}: no landmark rows")
    n_landmarks = max(max(p) for p in points.values())
    out: dict[str, np.ndarray] = {}
    for image_id, per_image in points.items():
        missing = sorted(set(range(1, n_landmarks + 1)) - set(per_image))
        if missing:
            shown = ", ".join(str(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise XLMError(
                f"{path}: line {first_line[image_id]}: image {image_id!r} lacks landmark(s) {shown}"
                f" of 1..{n_landmarks}"
            )
        out[image_id] = np.array(
            [per_image[k] for k in range(1, n_landmarks + 1)], dtype=np.float64
        )
    return out


SIZES_HEADER = ("image_id", "width", "height")


def read_image_sizes(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """Read an image-sizes CSV: header ``image_id,width,height``, one row per image, pixels.

    Used by ``xlm score --protocol zhu --sizes`` when the images are not at hand. Extra
    columns are ignored.

    Args:
        path: the CSV file.

    Returns:
        ``{image_id: (H, W)}`` in file order (note: (H, W), the project's size order).

    Raises:
        XLMError: naming the file (and line) on a missing file, a wrong header, a size that
            is not a positive integer, a duplicated image id, or no rows.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise XLMError(f"{path}: cannot read image-sizes CSV ({exc})") from exc
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header[:3]) != SIZES_HEADER:
        raise XLMError(
            f"{path}: line 1: header must start with {','.join(SIZES_HEADER)}, got {header!r}"
        )
    sizes: dict[str, tuple[int, int]] = {}
    for line_no, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 3 or not row[0].strip():
            raise XLMError(f"{path}: line {line_no}: expected image_id,width,height, got {row!r}")
        image_id = row[0].strip()
        try:
            w, h = int(row[1]), int(row[2])
        except ValueError:
            raise XLMError(
                f"{path}: line {line_no}: width, height {row[1]!r}, {row[2]!r} are not integers"
            ) from None
        if w <= 0 or h <= 0:
            raise XLMError(f"{path}: line {line_no}: width and height must be > 0, got {w}x{h}")
        if image_id in sizes:
            raise XLMError(f"{path}: line {line_no}: duplicate image {image_id!r}")
        sizes[image_id] = (h, w)
    if not sizes:
        raise XLMError(f"{path}: no image rows")
    return sizes
