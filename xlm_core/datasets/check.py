"""Validation shared by every loader, and ``xlm data check``.

The loaders call the helpers here, so ``load_dataset`` and ``check_dataset`` find the
same problems with the same words. A problem is *fatal* when it makes an image unusable
(unreadable or truncated image, wrong number of landmarks, non-numeric or non-finite
coordinates, a landmark outside the image, a duplicate id); it is *not fatal* when nothing
usable is lost (an image without annotation, an annotation without image, a landmark on
the image border). Loaders skip unusable images and record every problem;
``load_dataset(..., strict=True)`` raises instead when any problem is fatal.

``check_dataset`` additionally decodes every image (a loader only reads headers unless
``verify_images=True``), so a truncated file is found before training meets it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.base import LandmarkSet, Problem
from xlm_core.imageio import read_image, read_image_size

SYNTHETIC_MARKER = "SYNTHETIC.json"
#: How many ids a summarising problem spells out before it says "and N more".
SUMMARY_IDS = 20


class ProblemLog:
    """Collects :class:`Problem` records, naming files relative to the dataset root."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.problems: list[Problem] = []

    def name(self, path: str | os.PathLike) -> str:
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def add(self, path: str | os.PathLike, problem: str, fatal: bool = True) -> None:
        self.problems.append(Problem(file=self.name(path), problem=problem, fatal=fatal))

    def summarise(
        self, path: str | os.PathLike, ids: Iterable[str], what: str, fatal: bool = False
    ) -> None:
        """One problem for many ids of the same kind, e.g. annotations without images."""
        ids = list(ids)
        if not ids:
            return
        shown = ", ".join(ids[:SUMMARY_IDS])
        more = f" and {len(ids) - SUMMARY_IDS} more" if len(ids) > SUMMARY_IDS else ""
        self.add(path, f"{len(ids)} {what}: {shown}{more}", fatal=fatal)


def require_dir(path: Path, what: str) -> Path:
    """Raise a clear :class:`XLMError` when a folder the layout needs is missing."""
    if not path.is_dir():
        raise XLMError(f"{what}: expected folder {path} does not exist (wrong dataset root?)")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise XLMError(f"{what}: expected file {path} does not exist (wrong dataset root?)")
    return path


def require_root(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise XLMError(f"dataset root {root} does not exist or is not a folder")
    return root


def read_synthetic_marker(root: Path) -> dict | None:
    """The ``SYNTHETIC.json`` marker of a phantom dataset root, or ``None`` for real data."""
    path = Path(root) / SYNTHETIC_MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise XLMError(f"{path}: unreadable synthetic-dataset marker ({exc})") from None
    if not isinstance(marker, dict):
        raise XLMError(f"{path}: synthetic-dataset marker must be a JSON object")
    return marker


def parse_number(text: str) -> float | None:
    """``float(text)`` or ``None`` when ``text`` is not a number (NaN/inf are returned as such)."""
    try:
        return float(text.strip())
    except ValueError:
        return None


def parse_xy_values(values: list[str], n_landmarks: int) -> tuple[np.ndarray | None, list[str]]:
    """Parse ``[x1, y1, x2, y2, ...]`` text into an ``(L, 2)`` float64 array.

    Returns ``(array, [])`` or ``(None, [error, ...])`` with every error found.
    """
    errors: list[str] = []
    if len(values) != 2 * n_landmarks:
        pairs = len(values) / 2
        shown = f"{len(values) // 2}" if len(values) % 2 == 0 else f"{pairs:g}"
        errors.append(
            f"{shown} landmarks ({len(values)} values), expected {n_landmarks} ({2 * n_landmarks} values)"
        )
        return None, errors
    numbers = [parse_number(v) for v in values]
    bad_text = [i for i, v in enumerate(numbers) if v is None]
    if bad_text:
        shown = ", ".join(f"landmark {i // 2 + 1} {'xy'[i % 2]}={values[i].strip()!r}" for i in bad_text)
        errors.append(f"non-numeric coordinates: {shown}")
    bad_value = [i for i, v in enumerate(numbers) if v is not None and not math.isfinite(v)]
    if bad_value:
        shown = ", ".join(f"landmark {i // 2 + 1} {'xy'[i % 2]}={values[i].strip()}" for i in bad_value)
        errors.append(f"NaN or infinite coordinates: {shown}")
    if errors:
        return None, errors
    return np.asarray(numbers, dtype=np.float64).reshape(n_landmarks, 2), []


def landmark_problems(xy: np.ndarray, size_wh: tuple[int, int]) -> list[tuple[str, bool]]:
    """Problems of ``(L, 2)`` (x, y) landmarks against an image of ``size_wh`` = (W, H).

    Outside ``[0, W] x [0, H]`` is fatal; within one pixel of the border is reported, not
    fatal (a value such as ``(0, 771)`` usually marks a missing point).
    """
    width, height = size_wh
    x, y = xy[:, 0], xy[:, 1]
    found: list[tuple[str, bool]] = []
    outside = (x < 0) | (y < 0) | (x > width) | (y > height)
    if outside.any():
        shown = ", ".join(f"{i + 1} at ({x[i]:g}, {y[i]:g})" for i in np.flatnonzero(outside))
        found.append((f"landmarks outside the {width}x{height} image: {shown}", True))
    border = ~outside & ((x < 1) | (y < 1) | (x > width - 2) | (y > height - 2))
    if border.any():
        shown = ", ".join(f"{i + 1} at ({x[i]:g}, {y[i]:g})" for i in np.flatnonzero(border))
        found.append((f"landmarks on the image border (a missing point?): {shown}", False))
    return found


def probe_image(path: Path, verify: bool) -> tuple[tuple[int, int] | None, str | None]:
    """``((W, H), None)`` for a usable image, ``(None, reason)`` otherwise.

    ``verify``: decode every pixel (finds truncated files); else read the header only.
    """
    try:
        if verify:
            image = read_image(path)
            return (int(image.shape[1]), int(image.shape[0])), None
        return read_image_size(path), None
    except XLMError as exc:
        reason = str(exc)
        prefix = f"{path}: "
        return None, reason.removeprefix(prefix)


def record_landmark_problems(
    log: ProblemLog, where: str | os.PathLike, xy: np.ndarray, size_wh: tuple[int, int], context: str = ""
) -> bool:
    """Record the problems of ``xy`` against ``size_wh``; True when none is fatal."""
    usable = True
    for message, fatal in landmark_problems(xy, size_wh):
        log.add(where, context + message, fatal=fatal)
        usable = usable and not fatal
    return usable


def validate_sample(
    log: ProblemLog,
    image_path: Path,
    xy: np.ndarray,
    verify: bool,
    annotation: str | os.PathLike | None = None,
    context: str = "",
) -> tuple[int, int] | None:
    """Check one annotated image; record problems; return ``(W, H)`` when it is usable.

    ``annotation``: where landmark problems are reported (default: the image file);
    ``context``: a prefix for those messages, e.g. ``"row 375 (id 5148): "``.
    """
    size_wh, reason = probe_image(image_path, verify)
    if size_wh is None:
        log.add(image_path, f"unreadable image: {reason}")
        return None
    where = annotation if annotation is not None else image_path
    return size_wh if record_landmark_problems(log, where, xy, size_wh, context) else None


def find_duplicates(items: Iterable[tuple[str, Path]]) -> dict[str, list[Path]]:
    """``{id: [paths]}`` for ids that occur more than once."""
    seen: dict[str, list[Path]] = {}
    for key, path in items:
        seen.setdefault(key, []).append(path)
    return {k: v for k, v in seen.items() if len(v) > 1}


def report_duplicates(log: ProblemLog, duplicates: dict[str, list[Path]], what: str) -> None:
    for key, paths in sorted(duplicates.items()):
        names = ", ".join(log.name(p) for p in paths)
        for path in paths:
            log.add(path, f"duplicate id {key!r}: {len(paths)} {what} share it ({names}); none used")


@dataclass
class CheckReport:
    """What ``xlm data check`` prints. ``images``: usable annotated images."""

    dataset: str
    root: str
    images: int
    landmarks: int
    problems: list[Problem]
    annotators: dict | None = None  # inter-annotator disagreement (several sources only)

    @property
    def ok(self) -> bool:
        """No problem makes an image unusable."""
        return not any(p.fatal for p in self.problems)

    def as_dict(self) -> dict:
        out = {
            "dataset": self.dataset,
            "root": self.root,
            "images": self.images,
            "landmarks": self.landmarks,
            "problems": [
                {"file": p.file, "problem": p.problem, "fatal": p.fatal} for p in self.problems
            ],
        }
        if self.annotators is not None:
            out["annotators"] = self.annotators
        return out

    def as_text(self) -> str:
        lines = [
            (f"{self.dataset} at {self.root}: {self.images} usable annotated images, "
            f"{self.landmarks} landmarks, {len(self.problems)} problems "
            f"({sum(p.fatal for p in self.problems)} make an image unusable)")
        ]
        for p in self.problems:
            tag = "ERROR" if p.fatal else "note "
            lines.append(f"  {tag} {p.file}: {p.problem}")
        lines.extend(disagreement_lines(self.annotators))
        return "\n".join(lines)


def disagreement_lines(info: dict | None, names: list[str] | None = None) -> list[str]:
    """Text lines for the inter-annotator disagreement of :func:`report_from_set`."""
    if not info:
        return []
    who = " vs ".join(info["annotators"])
    if not info["n_images"]:
        return [f"inter-annotator MRE ({who}): no image with every annotation valid"]
    unit = info["unit"]
    lines = [f"inter-annotator MRE ({who}, {info['n_images']} images): {info['mre']:.3f} {unit}"
             + ("" if unit == "px" else f" ({info['mre_px']:.3f} px)")]
    for k, value in enumerate(info["per_landmark_mre"]):
        label = f"{k + 1}" + (f" {names[k]}" if names else "")
        lines.append(f"  landmark {label}: {value:.3f} {unit}")
    return lines


def report_from_set(lset: LandmarkSet) -> CheckReport:
    return CheckReport(
        dataset=lset.name,
        root=str(lset.root),
        images=len(lset.samples),
        landmarks=lset.n_landmarks,
        problems=list(lset.problems),
        annotators=lset.annotator_disagreement,
    )


def check_dataset(name: str, root: str | os.PathLike, **options) -> CheckReport:
    """Validate a dataset root, decoding every image; lists every problem found.

    Raises :class:`XLMError` only when the root itself is wrong (missing folder or file).
    """
    from xlm_core.datasets import load_dataset  # the loaders import this module

    options = {**options, "verify_images": True, "strict": False}
    return report_from_set(load_dataset(name, root, **options))
