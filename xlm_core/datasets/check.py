"""Validation shared by every loader, and ``xlm data check``.

The loaders call the helpers here, so ``load_dataset`` and ``check_dataset`` find the
same problems with the same words. A problem is *fatal* when it makes an image unusable
(unreadable or truncated image, wrong number of landmarks, non-numeric or non-finite
coordinates, a landmark outside the image, a duplicate id); it is *not fatal* when nothing
usable is lost (an image without annotation, an annotation without image, a landmark on
the image border). Loaders skip unusable images and record every problem;
``load_dataset(..., strict=True)`` raises instead when any problem is fatal.

One decision: :func:`probe_image` (is the image usable, and its size) and
:func:`landmark_problems` (are its landmarks usable) decide for ``xlm data check`` and for
every loader; :func:`usable` is that decision for one image and its landmarks. A loader
without ``verify_images=True`` reads headers and checks that the file is complete (JPEG end
marker, PNG ``IEND`` chunk, BMP pixel data as long as its header says), decoding the files
that fail that quick test, so a truncated image is dropped when the set is loaded, not met
mid-training. ``check_dataset`` decodes every image. Every image a loader drops is listed
with its reason in ``LandmarkSet.dropped`` (see :func:`dropped_images`).

**Why this file is long** (~600 lines, more than a third of them docstrings): it is the one
place that decides whether an image and its landmarks are usable and says why, in the words
every loader and ``xlm data check`` report; splitting the decision (image probes, landmark
checks, the problem log, the report) over modules would let two loaders word or judge one
problem differently.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.base import LandmarkSet, Problem
from xlm_core.datasets.splits import sorted_ids
from xlm_core.imageio import read_image, read_image_size

SYNTHETIC_MARKER = "SYNTHETIC.json"
#: How many ids a summarising problem spells out before it says "and N more".
SUMMARY_IDS = 20


class ProblemLog:
    """Collects :class:`Problem` records, naming files relative to the dataset root.

    Args:
        root: the dataset root.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.problems: list[Problem] = []
        #: the image a loader is looking at: problems added meanwhile belong to it
        self.current_id: str | None = None

    def name(self, path: str | os.PathLike) -> str:
        """A file's name as problems show it.

        Args:
            path: the file.

        Returns:
            Its path relative to the root (POSIX), or the path itself when outside the root.
        """
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def add(self, path: str | os.PathLike, problem: str, fatal: bool = True,
            image_id: str | None = None) -> None:
        """Record one problem of ``path``.

        Args:
            path: the file the problem is in (named relative to the root).
            problem: what is wrong, in words.
            fatal: True when it makes the image unusable.
            image_id: the image it belongs to (default :attr:`current_id`); a fatal problem
                with an image id puts that image in ``LandmarkSet.dropped``.
        """
        owner = image_id if image_id is not None else self.current_id
        self.problems.append(Problem(file=self.name(path), problem=problem, fatal=fatal, image_id=owner))

    def summarise(
        self, path: str | os.PathLike, ids: Iterable[str], what: str, fatal: bool = False
    ) -> None:
        """Record one problem for many ids of the same kind, e.g. annotations without images.

        At most :data:`SUMMARY_IDS` ids are listed; nothing is recorded for no ids.

        Args:
            path: the file or folder the problem is in.
            ids: the ids concerned.
            what: what they are, e.g. ``"annotations have no image (skipped)"``.
            fatal: True when it makes images unusable.
        """
        ids = list(ids)
        if not ids:
            return
        shown = ", ".join(ids[:SUMMARY_IDS])
        more = f" and {len(ids) - SUMMARY_IDS} more" if len(ids) > SUMMARY_IDS else ""
        self.add(path, f"{len(ids)} {what}: {shown}{more}", fatal=fatal)


def require_dir(path: Path, what: str) -> Path:
    """Check that a folder the layout needs exists.

    Args:
        path: the folder.
        what: what it is, for the message.

    Returns:
        ``path``.

    Raises:
        XLMError: when it is missing (wrong dataset root?).
    """
    if not path.is_dir():
        raise XLMError(f"{what}: expected folder {path} does not exist (wrong dataset root?)")
    return path


def require_file(path: Path, what: str) -> Path:
    """Check that a file the layout needs exists.

    Args:
        path: the file.
        what: what it is, for the message.

    Returns:
        ``path``.

    Raises:
        XLMError: when it is missing (wrong dataset root?).
    """
    if not path.is_file():
        raise XLMError(f"{what}: expected file {path} does not exist (wrong dataset root?)")
    return path


def require_root(root: str | os.PathLike) -> Path:
    """Check that a dataset root is a folder.

    Args:
        root: the dataset root.

    Returns:
        It as a ``Path``.

    Raises:
        XLMError: when it does not exist or is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise XLMError(f"dataset root {root} does not exist or is not a folder")
    return root


def read_synthetic_marker(root: Path) -> dict | None:
    """The ``SYNTHETIC.json`` marker of a phantom dataset root.

    Args:
        root: the dataset root.

    Returns:
        The marker's JSON object, or None for real data (no marker).

    Raises:
        XLMError: for an unreadable marker or one that is not a JSON object.
    """
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
    """``float(text)``, or None when ``text`` is not a number (NaN/inf are returned as such).

    Args:
        text: the field (surrounding spaces ignored).

    Returns:
        The float or None.
    """
    try:
        return float(text.strip())
    except ValueError:
        return None


def parse_xy_values(values: list[str], n_landmarks: int) -> tuple[np.ndarray | None, list[str]]:
    """Parse ``[x1, y1, x2, y2, ...]`` text fields into landmarks.

    Args:
        values: the fields, two per landmark.
        n_landmarks: L.

    Returns:
        ``((L, 2) float64 array, [])`` or ``(None, [error, ...])`` with every error found (a
        wrong count, non-numeric or non-finite coordinates).
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


def order_problem(xy: np.ndarray, group: int, axis: int) -> str | None:
    """Why ``xy`` breaks the anatomy's order, or None.

    The rule (a descriptor's ``order``): landmarks ``group*k+1 .. group*k+group`` are one
    structure (e.g. a vertebra's four corners); the structures' centres (the mean of their
    landmarks) must increase strictly along ``axis`` (0: x, 1: y, which grows downwards), i.e.
    appear in the annotation's order from top to bottom. A row that breaks it has its
    structures swapped or misplaced, not a corner a few pixels off.

    Args:
        xy: ``(L, 2)`` landmarks.
        group: landmarks per structure (divides L).
        axis: 0 or 1.

    Returns:
        A message naming every pair of neighbouring structures out of order, or None.
    """
    centres = np.asarray(xy, dtype=np.float64).reshape(-1, group, 2).mean(axis=1)[:, axis]
    wrong = np.flatnonzero(np.diff(centres) <= 0)
    if not wrong.size:
        return None
    name, after = "xy"[axis], ("right of", "below")[axis]

    def span(k: int) -> str:
        return f"group {k + 1} (landmarks {group * k + 1}-{group * k + group}, centre {name}={centres[k]:.1f})"

    pairs = "; ".join(f"{span(k + 1)} is not {after} {span(k)}" for k in wrong)
    return f"landmark groups out of anatomical order (each group's centre must lie {after} the previous one's): {pairs}"


def landmark_problems(xy: np.ndarray, size_wh: tuple[int, int]) -> list[tuple[str, bool]]:
    """Problems of landmarks against their image's size.

    NaN or infinite coordinates and outside ``[0, W] x [0, H]`` are fatal; within one pixel of
    the border is reported, not fatal (a value such as ``(0, 771)`` usually marks a missing
    point).

    Args:
        xy: ``(L, 2)`` (x, y) in pixels.
        size_wh: the image's ``(W, H)``.

    Returns:
        ``[(message, fatal)]``, empty when none.
    """
    width, height = size_wh
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():  # NaN compares False with everything: it would pass the tests below
        shown = ", ".join(str(i + 1) for i in np.flatnonzero(bad))
        return [(f"NaN or infinite coordinates: landmarks {shown}", True)]
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


def looks_complete(path: str | os.PathLike) -> bool:
    """A quick test that an image file is not cut short, without decoding it.

    JPEG: ends with the end-of-image marker (trailing zero padding allowed); PNG: ends with
    the ``IEND`` chunk; uncompressed BMP: holds as many bytes as its header announces. Other
    formats: True. A False is a suspicion only: :func:`probe_image` then decodes the file.

    Args:
        path: the image file.

    Returns:
        False when the file looks truncated, else True.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(34)
            fh.seek(max(0, size - 64))
            tail = fh.read()
    except OSError:
        return False
    if suffix in (".jpg", ".jpeg"):
        return tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if suffix == ".png":
        return b"IEND" in tail[-16:]
    if suffix == ".bmp" and len(head) >= 34 and head[:2] == b"BM":
        declared, offset = struct.unpack("<I", head[2:6])[0], struct.unpack("<I", head[10:14])[0]
        width, height = struct.unpack("<ii", head[18:26])
        bpp, compression = struct.unpack("<HI", head[28:34])
        if size < declared:
            return False
        if compression == 0 and bpp:
            row = ((bpp * abs(width) + 31) // 32) * 4
            return size >= offset + row * abs(height)
    return True


def probe_image(path: Path, verify: bool) -> tuple[tuple[int, int] | None, str | None]:
    """Decide whether an image file is usable: the one test loaders and ``xlm data check`` share.

    Args:
        path: the image file.
        verify: decode every pixel (``xlm data check``); else read the header and decode only
            a file that fails :func:`looks_complete` (a loader), so a truncated file is
            found either way.

    Returns:
        ``((W, H), None)`` for a usable image, ``(None, reason)`` otherwise.
    """
    try:
        if verify or not looks_complete(path):
            image = read_image(path)
            return (int(image.shape[1]), int(image.shape[0])), None
        return read_image_size(path), None
    except XLMError as exc:
        reason = str(exc)
        prefix = f"{path}: "
        return None, reason.removeprefix(prefix)


def usable(image_path: str | os.PathLike, landmarks_xy: np.ndarray | None = None,
           verify: bool = False) -> tuple[bool, list[str]]:
    """Whether one image (and its landmarks) can be used, and why not.

    The same decision every loader and ``xlm data check`` make (:func:`probe_image`, then
    :func:`landmark_problems`; NaN or infinite coordinates are unusable).

    Args:
        image_path: the image file.
        landmarks_xy: ``(L, 2)`` (x, y) in the image's pixels, or ``None`` for the image alone.
        verify: decode every pixel (see :func:`probe_image`).

    Returns:
        ``(True, [])`` or ``(False, [reason, ...])``.
    """
    size_wh, reason = probe_image(Path(image_path), verify)
    if size_wh is None:
        return False, [f"unreadable image: {reason}"]
    if landmarks_xy is None:
        return True, []
    xy = np.asarray(landmarks_xy, dtype=np.float64)
    reasons = [message for message, fatal in landmark_problems(xy, size_wh) if fatal]
    return not reasons, reasons


def dropped_images(problems: Iterable[Problem], usable_ids: Iterable[str]) -> list[tuple[str, str]]:
    """The images a loader skipped as unusable: ``[(image id, reason)]`` in natural id order.

    An image is dropped when a fatal problem names its id and it is not among the usable
    ones; several problems of one image are joined with ``"; "``.

    Args:
        problems: every problem a loader recorded.
        usable_ids: the ids of the samples it kept.

    Returns:
        ``[(image id, reason)]``.
    """
    kept = set(usable_ids)
    reasons: dict[str, list[str]] = {}
    for p in problems:
        if p.fatal and p.image_id is not None and p.image_id not in kept:
            reasons.setdefault(p.image_id, []).append(f"{p.file}: {p.problem}")
    return [(i, "; ".join(reasons[i])) for i in sorted_ids(reasons)]


def record_landmark_problems(
    log: ProblemLog, where: str | os.PathLike, xy: np.ndarray, size_wh: tuple[int, int], context: str = ""
) -> bool:
    """Record the problems of ``xy`` against ``size_wh`` (:func:`landmark_problems`).

    Args:
        log: where they are recorded.
        where: the file they are reported on.
        xy: ``(L, 2)`` (x, y) in pixels.
        size_wh: the image's ``(W, H)``.
        context: a prefix for the messages.

    Returns:
        True when none is fatal.
    """
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
    """Check one annotated image (readable, landmarks inside) and record its problems.

    Args:
        log: where problems are recorded.
        image_path: the image file.
        xy: ``(L, 2)`` (x, y) landmarks in pixels.
        verify: decode the whole image (finds truncated files; slower).
        annotation: where landmark problems are reported (default: the image file).
        context: a prefix for those messages, e.g. ``"row 375 (id 5148): "``.

    Returns:
        The image's ``(W, H)`` when it is usable, else None.
    """
    size_wh, reason = probe_image(image_path, verify)
    if size_wh is None:
        log.add(image_path, f"unreadable image: {reason}")
        return None
    where = annotation if annotation is not None else image_path
    return size_wh if record_landmark_problems(log, where, xy, size_wh, context) else None


def find_duplicates(items: Iterable[tuple[str, Path]]) -> dict[str, list[Path]]:
    """The ids that occur more than once.

    Args:
        items: ``(id, path)`` pairs.

    Returns:
        ``{id: [paths]}`` for the repeated ids only.
    """
    seen: dict[str, list[Path]] = {}
    for key, path in items:
        seen.setdefault(key, []).append(path)
    return {k: v for k, v in seen.items() if len(v) > 1}


def report_duplicates(log: ProblemLog, duplicates: dict[str, list[Path]], what: str) -> None:
    """Record a fatal problem on every file of each duplicated id.

    Args:
        log: where problems are recorded.
        duplicates: ``{id: [paths]}`` (:func:`find_duplicates`).
        what: what the files are, e.g. ``"images"``.
    """
    for key, paths in sorted(duplicates.items()):
        names = ", ".join(log.name(p) for p in paths)
        for path in paths:
            log.add(path, f"duplicate id {key!r}: {len(paths)} {what} share it ({names}); none used",
                    image_id=key)


@dataclass
class CheckReport:
    """What ``xlm data check`` prints.

    Attributes:
        dataset: the dataset's name.
        root: its folder.
        images: usable annotated images.
        landmarks: L.
        problems: every problem found.
        annotators: inter-annotator disagreement (several sources only), else None.
        dropped: the unusable images ``[(id, reason)]``.
        images_found: image files found (None: not counted).
        split_problems: a split the dataset needs that is empty.
        where: where the dataset is published and how to lay it out (shown when the root looks
            empty or incomplete), else None.
    """

    dataset: str
    root: str
    images: int
    landmarks: int
    problems: list[Problem]
    annotators: dict | None = None  # inter-annotator disagreement (several sources only)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    images_found: int | None = None
    split_problems: list[str] = field(default_factory=list)
    where: str | None = None

    @property
    def ok(self) -> bool:
        """No image is unusable and every split the dataset needs has images."""
        return not any(p.fatal for p in self.problems) and not self.dropped and not self.split_problems

    def as_dict(self) -> dict:
        """The report as JSON-ready data (``xlm data check --json``).

        Returns:
            ``dataset, root, images_found, images, unusable_images, dropped, landmarks,
            split_problems, problems`` (and ``annotators``, ``where`` when known).
        """
        out = {
            "dataset": self.dataset,
            "root": self.root,
            "images_found": self.images_found,
            "images": self.images,
            "unusable_images": len(self.dropped),
            "dropped": [{"image_id": i, "reason": r} for i, r in self.dropped],
            "landmarks": self.landmarks,
            "split_problems": list(self.split_problems),
            "problems": [
                {"file": p.file, "problem": p.problem, "fatal": p.fatal, "image_id": p.image_id}
                for p in self.problems
            ],
        }
        if self.annotators is not None:
            out["annotators"] = self.annotators
        if self.where is not None:
            out["where"] = self.where
        return out

    def as_text(self) -> str:
        """The report as ``xlm data check`` prints it.

        Returns:
            A summary line (image files found, usable, unusable, problems), the unusable ids,
            empty splits, one line per problem, annotator disagreement, where to get the data.
        """
        found = "" if self.images_found is None else f"{self.images_found} image files found, "
        lines = [
            (f"{self.dataset} at {self.root}: {found}{self.images} usable annotated images, "
             f"{len(self.dropped)} unusable, {self.landmarks} landmarks, "
             f"{len(self.problems)} problems ({sum(p.fatal for p in self.problems)} fatal)")
        ]
        if self.dropped:
            ids = [i for i, _ in self.dropped]
            lines.append(f"unusable images (skipped by every loader): {', '.join(ids)}")
        for text in self.split_problems:
            lines.append(f"  ERROR split: {text}")
        for p in self.problems:
            tag = "ERROR" if p.fatal else "note "
            lines.append(f"  {tag} {p.file}: {p.problem}")
        lines.extend(disagreement_lines(self.annotators))
        if self.where:
            lines.append(self.where)
        return "\n".join(lines)


def split_problems(lset: LandmarkSet) -> list[str]:
    """An empty split the dataset needs (``xlm train`` needs a training and a test part).

    Args:
        lset: a loaded set.

    Returns:
        One message per empty split (``[]`` when both hold images).
    """
    n = len(lset.samples)
    out = []
    if not lset.train_ids:
        out.append(f"no training images ({n} usable images, none in the training part of the split)")
    if not lset.test_ids:
        out.append(f"no test images ({n} usable images, all in the training part of the split; "
                   "add the test images, or set the split with --option train=N)")
    return out


def disagreement_lines(info: dict | None, names: list[str] | None = None) -> list[str]:
    """Text lines for an inter-annotator disagreement.

    Args:
        info: :func:`xlm_core.datasets.engine.annotator_disagreement`'s dict, or None.
        names: landmark names shown beside the numbers, or None.

    Returns:
        The lines (``[]`` for None): the overall MRE, then one per landmark.
    """
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
    """The :class:`CheckReport` of a loaded set (with where to get a built-in set when incomplete).

    Args:
        lset: a set loaded with ``verify_images=True``.

    Returns:
        The report.
    """
    from xlm_core.datasets.sources import incomplete_hint

    splits = split_problems(lset)
    return CheckReport(
        dataset=lset.name,
        root=str(lset.root),
        images=len(lset.samples),
        landmarks=lset.n_landmarks,
        problems=list(lset.problems),
        annotators=lset.annotator_disagreement,
        dropped=list(lset.dropped),
        images_found=lset.images_found,
        split_problems=splits,
        where=None if lset.synthetic else incomplete_hint(lset.name, lset.images_found, len(lset.samples),
                                                                 bool(splits)),
    )
