"""One loader for every dataset: a :class:`~xlm_core.datasets.descriptor.Descriptor` plus a root.

:func:`load_described` finds the images (descriptor ``images``), reads each annotation
source in the descriptor's format (:mod:`xlm_core.datasets.formats`), combines several
annotators into their mean, converts ratios to pixels, checks every landmark against its
image and records every problem in a :class:`~xlm_core.datasets.check.ProblemLog`. The
built-in HEAD, HAND and CHEST loaders are this function with their packaged descriptors.

Rules, in the words a problem is reported with:

- an image id (file stem) found twice among the images of one ``images`` alternative is a
  duplicate (none used); an id found by an earlier alternative wins over a later one;
- an image with no annotation at all, or an annotation with no image, is reported, not fatal;
- with several sources, a missing or broken annotation file is reported by name and left
  out of the mean (``require_all: true``: the image is unusable instead);
- landmarks outside the image are fatal; on its border, a note. They are reported on the
  annotation file when one annotation gave them, on the image when they are a mean.

**Why this file is long** (~600 lines, a quarter of them docstrings): it is the one loader every
dataset goes through, and its rules above interlock (which image an id means, which sources
feed the mean, where a problem is reported); kept in one file they read in the order a load
runs them: options, images, annotations, the loop, the split. The per-format parsers, the
checks and the descriptor schema already live apart (``formats``, ``check``, ``descriptor``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlm_core import XLMError
from xlm_core.datasets.base import Sample, Scale
from xlm_core.datasets.check import (
    ProblemLog,
    find_duplicates,
    order_problem,
    probe_image,
    read_synthetic_marker,
    record_landmark_problems,
    report_duplicates,
    require_root,
    validate_sample,
)
from xlm_core.datasets.descriptor import DEFAULT_ALTERNATIVE, Descriptor
from xlm_core.datasets.formats import (
    FILE_NOUNS,
    PER_IMAGE_READERS,
    TABLE_READERS,
    Parsed,
    TableEntry,
)
from xlm_core.datasets.splits import sorted_ids
from xlm_core.imageio import is_image_file

THRESHOLDS_MM = (2.0, 2.5, 3.0, 4.0)
THRESHOLDS_PX = (3.0, 6.0, 9.0)
_WILDCARDS = "*?["


# --------------------------------------------------------------------------- options


def parse_pair(value, n_landmarks: int, named: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """A landmark pair as 0-based indices.

    Args:
        value: ``(a, b)`` 0-based, or a name of ``named`` (case-insensitive, e.g. ``"payer"``).
        n_landmarks: L; both indices must lie in ``0..L-1``.
        named: the named pairs the dataset offers.

    Returns:
        ``(a, b)``.

    Raises:
        XLMError: for an unknown name, a value that is not two integers, equal indices or an
            index out of range.
    """
    if isinstance(value, str):
        if value.lower() in named:
            return named[value.lower()]
        raise XLMError(f"wrist_pair must be two 0-based indices or one of {sorted(named)}, got {value!r}")
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise XLMError(f"wrist_pair must be two 0-based landmark indices, got {value!r}") from None
    if a == b or not (0 <= a < n_landmarks and 0 <= b < n_landmarks):
        raise XLMError(f"wrist_pair must be two different indices in 0..{n_landmarks - 1}, got {value!r}")
    return a, b


@dataclass(frozen=True)
class Choices:
    """The loader options resolved against a descriptor.

    Attributes:
        sources: the annotation sources used (name -> pattern).
        alternatives: image alternatives in preference order.
        pair: the wrist pair, 0-based, or None.
        excluded: image ids left out.
        exclusion_size: ids in the chosen named exclusion list (the paper total shrinks by it).
        options: what ``LandmarkSet.options`` records.
    """

    sources: dict[str, str]  # the annotation sources used (name -> pattern)
    alternatives: list[str]  # image alternatives in preference order
    pair: tuple[int, int] | None  # 0-based
    excluded: frozenset[str]
    exclusion_size: int  # ids in the chosen named exclusion list (the paper total shrinks by it)
    options: dict  # what LandmarkSet.options records


def resolve_options(desc: Descriptor, annotator: str | None, image_format: str | None,
                    wrist_pair, exclusion: str | None) -> Choices:
    """Check the loader options against ``desc`` and resolve them.

    Args:
        desc: the dataset's descriptor.
        annotator: ``"mean"`` or a source name (None: ``"mean"``); only with several sources.
        image_format: ``"auto"`` or an images alternative (None: ``"auto"``); only with several.
        wrist_pair: a pair or a name (None: the descriptor's); only with a pair spacing rule.
        exclusion: None or a named exclusion list of the descriptor.

    Returns:
        :class:`Choices`.

    Raises:
        XLMError: for a value the descriptor does not offer.
    """
    options: dict = {}
    sources = dict(desc.sources)
    if len(desc.sources) > 1:
        annotator = "mean" if annotator is None else annotator
        allowed = ("mean", *desc.sources)
        if annotator not in allowed:
            raise XLMError(f"{desc.name} annotator must be one of {allowed}, got {annotator!r}")
        if annotator != "mean":
            sources = {annotator: desc.sources[annotator]}
        options["annotator"] = annotator
    alternatives = list(desc.images)
    if len(desc.images) > 1:
        image_format = "auto" if image_format is None else image_format
        allowed = ("auto", *desc.images)
        if image_format not in allowed:
            raise XLMError(f"{desc.name} image_format must be one of {allowed}, got {image_format!r}")
        if image_format != "auto":
            alternatives = [image_format]
        options["image_format"] = image_format
    pair = None
    if desc.spacing.pair is not None:
        pair = desc.spacing.pair if wrist_pair is None else parse_pair(
            wrist_pair, desc.n_landmarks, desc.spacing.named_pairs)
        options["wrist_pair"] = list(pair)
    excluded = set(desc.exclude)
    size = 0
    if desc.named_exclusions:
        allowed = (None, *desc.named_exclusions)
        if exclusion not in allowed:
            raise XLMError(f"{desc.name} exclusion must be one of {allowed}, got {exclusion!r}")
        if exclusion is not None:
            excluded |= set(desc.named_exclusions[exclusion])
            size = len(desc.named_exclusions[exclusion])
        options["exclusion"] = exclusion
    if not desc.builtin:
        options["descriptor"] = desc.digest
    return Choices(sources, alternatives, pair, frozenset(excluded), size, options)


# --------------------------------------------------------------------------- images


def static_prefix(pattern: str) -> str:
    """The folder part of a glob or ``{id}`` pattern before its first wildcard.

    Args:
        pattern: e.g. ``"RawImage/*/{id}.bmp"``.

    Returns:
        e.g. ``"RawImage"``; ``""`` for the root.
    """
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if any(c in part for c in _WILDCARDS) or "{id}" in part:
            break
        fixed.append(part)
    return "/".join(fixed)


def _any_case(glob: str) -> str:
    """Make the letters of a glob's last component match either case (``*.tif`` ~ ``X.TIF``)."""
    head, _, last = glob.rpartition("/")
    out, depth = [], 0
    for c in last:
        if c == "[":
            depth += 1
        elif c == "]":
            depth = max(depth - 1, 0)
        out.append(f"[{c.lower()}{c.upper()}]" if c.isalpha() and depth == 0 else c)
    return (head + "/" if head else "") + "".join(out)


def find_images(desc: Descriptor, root: Path, alternatives: list[str], excluded: frozenset[str],
                log: ProblemLog) -> tuple[dict[str, Path], set[str]]:
    """The image files of the chosen ``images`` alternatives, by id (file stem).

    An id found twice in one alternative is a duplicate (reported, none used); an id found by an
    earlier alternative wins over a later one. Globs match either letter case.

    Args:
        desc: the dataset's descriptor.
        root: the dataset root.
        alternatives: image alternatives in preference order.
        excluded: ids to leave out.
        log: where duplicates are reported.

    Returns:
        ``({id: image path}, duplicated ids)``.

    Raises:
        XLMError: naming the key when the globs match no image file (or their folders do not
            exist).
    """
    images: dict[str, Path] = {}
    blocked: set[str] = set()
    globs: list[str] = []
    for alternative in alternatives:
        pool: dict[Path, None] = {}
        for glob in desc.images[alternative]:
            globs.append(glob)
            for path in sorted(root.glob(_any_case(glob)), key=str):
                if path.is_file() and is_image_file(path):
                    pool.setdefault(path, None)
        items = [(p.stem, p) for p in pool if p.stem not in excluded]
        duplicates = find_duplicates(items)
        report_duplicates(log, {k: v for k, v in duplicates.items() if k not in images and k not in blocked},
                          "images")
        for key, path in items:
            if key in images or key in blocked:
                continue
            if key in duplicates:
                blocked.add(key)
                continue
            images[key] = path
    if not images and not blocked:
        key = "images" if alternatives == [DEFAULT_ALTERNATIVE] else f"images ({', '.join(alternatives)})"
        folders = [root / static_prefix(g) for g in globs if static_prefix(g)]
        absent = [f for f in dict.fromkeys(folders) if not f.is_dir()]
        if absent and len(absent) == len(dict.fromkeys(folders)):
            shown = " or ".join(str(f) for f in absent)
            raise XLMError(f"{desc.where}: {key}: expected folder {shown} does not exist (wrong dataset root?)")
        raise XLMError(f"{desc.where}: {key}: {', '.join(map(repr, globs))} match no image file under {root}")
    return images, blocked


# --------------------------------------------------------------------------- annotations


def _id_regex(pattern: str) -> re.Pattern:
    """``reader_a/{id}.json`` -> a regex whose group 1 is the id (a repeated ``{id}`` must agree)."""
    parts = pattern.split("{id}")
    return re.compile(re.escape(parts[0]) + r"(.+)" + r"\1".join(re.escape(p) for p in parts[1:]))


def find_annotation_files(root: Path, pattern: str) -> dict[str, Path]:
    """The files that match a ``{id}`` pattern under ``root``, by id.

    Args:
        root: the dataset root.
        pattern: e.g. ``"reader_a/{id}.json"`` (a repeated ``{id}`` must agree).

    Returns:
        ``{id: file}``.
    """
    regex = _id_regex(pattern)
    found = {}
    for path in sorted(root.glob(pattern.replace("{id}", "*")), key=str):
        match = regex.fullmatch(path.relative_to(root).as_posix())
        if match and path.is_file():
            found[match.group(1)] = path
    return found


@dataclass
class _Source:
    name: str
    pattern: str
    files: dict[str, Path] | None = None  # per-image formats
    table: dict[str, TableEntry] | None = None  # table formats
    table_path: Path | None = None


def _open_sources(desc: Descriptor, root: Path, sources: dict[str, str], log: ProblemLog) -> list[_Source]:
    opened = []
    names = list(desc.landmark_names)
    for name, pattern in sources.items():
        key = "annotations.sources" + ("" if len(desc.sources) == 1 else f" ({name})")
        if desc.is_table:
            path = root / pattern
            if not path.is_file():
                raise XLMError(f"{desc.where}: {key}: expected file {path} does not exist (wrong dataset root?)")
            extra = {"index": root / desc.index} if desc.index is not None else {}
            table = TABLE_READERS[desc.format](path, log, names, desc.names_given, **extra)
            opened.append(_Source(name, pattern, table=table, table_path=path))
            continue
        folder = root / static_prefix(pattern)
        if not folder.is_dir():
            raise XLMError(f"{desc.where}: {key}: expected folder {folder} does not exist (wrong dataset root?)")
        files = find_annotation_files(root, pattern)
        if not files and not desc.builtin:
            raise XLMError(f"{desc.where}: {key}: {pattern!r} matches no file under {root}")
        opened.append(_Source(name, pattern, files=files))
    return opened


def _report_orphans(desc: Descriptor, root: Path, sources: list[_Source], known: set[str],
                    excluded: frozenset[str], log: ProblemLog) -> None:
    """Annotations whose id has no image: one summary per source (table rows: parsed, noted)."""
    for src in sources:
        if src.files is not None:
            orphans = [i for i in src.files if i not in known and i not in excluded]
            noun = FILE_NOUNS[desc.format]
            folders = sorted({static_prefix(g) for globs in desc.images.values() for g in globs})
            inside = f" in {', '.join(f + '/' for f in folders)}" if all(folders) else ""
            log.summarise(root / static_prefix(src.pattern), sorted_ids(orphans),
                          f"{noun} have no image{inside} (skipped)")
            continue
        orphans = [i for i in src.table if i not in known and i not in excluded]
        what = "rows of" if desc.format == "payer_csv" else "image ids in"
        log.summarise(src.table_path, orphans, f"{what} {src.table_path.name} have no image (skipped)")
        for key in orphans:  # still worth knowing about, though nothing is lost now
            entry = src.table[key]
            for error in entry.parsed.errors:
                log.add(src.table_path, f"{entry.orphan_context}{error}", fatal=False)
            xy = entry.parsed.xy
            if xy is not None and desc.units == "px":
                low = np.flatnonzero((xy < 1).any(axis=1))
                if low.size:
                    shown = ", ".join(f"{i + 1} at ({xy[i, 0]:g}, {xy[i, 1]:g})" for i in low)
                    log.add(src.table_path, f"{entry.orphan_context}landmarks on the image border "
                            f"(a missing point?): {shown}", fatal=False)


def _read(desc: Descriptor, src: _Source, image_id: str) -> tuple[Parsed, Path, str] | None:
    """``(parsed, file, message prefix)`` of one source for one image, ``None`` when absent."""
    if src.table is not None:
        entry = src.table.get(image_id)
        if entry is None:
            return None
        return entry.parsed, src.table_path, entry.context
    path = src.files.get(image_id)
    if path is None:
        return None
    reader = PER_IMAGE_READERS[desc.format]
    return reader(path, list(desc.landmark_names), desc.names_given), path, ""


def _describe_absent(desc: Descriptor, src: _Source, image_id: str) -> str:
    if src.table is not None:
        return f"no row in {src.table_path.name}"
    return f"no {src.pattern.replace('{id}', image_id)}"


# --------------------------------------------------------------------------- the loader


def dataset_folder(desc: Descriptor, root: Path) -> Path:
    """The dataset root ``root`` means: ``root/<source_folder>`` when that folder exists, else ``root``.

    A data root that holds public repositories side by side (``hamedan_university_dataset/``,
    ``boostnet_labeldata/``) then works as well as the dataset folder itself.

    Args:
        desc: the dataset's descriptor.
        root: the folder given.

    Returns:
        The dataset root.
    """
    if desc.source_folder is not None and (root / desc.source_folder).is_dir():
        return root / desc.source_folder
    return root



def load_described(
    desc: Descriptor,
    root: str | os.PathLike,
    annotator: str | None = None,
    image_format: str | None = None,
    wrist_pair=None,
    exclusion: str | None = None,
    verify_images: bool = False,
    log: ProblemLog | None = None,
) -> tuple[list[Sample], ProblemLog, dict]:
    """Read the dataset ``desc`` describes under ``root`` (the rules: module docstring).

    Use :func:`xlm_core.datasets.load_dataset` for a :class:`LandmarkSet`.

    Args:
        desc: the dataset's descriptor.
        root: the dataset root.
        annotator: ``"mean"`` or one source (several sources only).
        image_format: ``"auto"`` or one images alternative (several alternatives only).
        wrist_pair: the wrist pair (a pair spacing rule only).
        exclusion: a named exclusion list of the descriptor, or None.
        verify_images: decode every image (finds truncated files; slower).
        log: a problem log to add to; None: a new one.

    Returns:
        ``(usable samples, problems, settings)``; ``settings`` holds ``landmark_names``,
        ``scale``, ``thresholds``, ``train_size``, ``test_size``, ``paper_split``,
        ``split_train``, ``split_ids``, ``synthetic``, ``options`` and
        ``annotator_disagreement`` (see :func:`annotator_disagreement`).

    Raises:
        XLMError: for a missing root, an option the descriptor does not offer, or a missing
            images folder, annotation folder or table.
    """
    root = dataset_folder(desc, require_root(root))
    choices = resolve_options(desc, annotator, image_format, wrist_pair, exclusion)
    log = log or ProblemLog(root)
    n = desc.n_landmarks
    tables_first = desc.is_table  # a table indexes the root: name it first when it is missing
    try:
        sources = _open_sources(desc, root, choices.sources, log) if tables_first else []
        images, duplicates = find_images(desc, root, choices.alternatives, choices.excluded, log)
        if not tables_first:
            sources = _open_sources(desc, root, choices.sources, log)
    except XLMError as exc:
        if desc.source_folder is None:
            raise
        raise XLMError(f"{exc}; ROOT may also be a folder holding {desc.source_folder}/") from None
    _report_orphans(desc, root, sources, set(images) | duplicates, choices.excluded, log)

    samples: list[Sample] = []
    agreement: list[tuple[np.ndarray, np.ndarray]] = []  # (annotators (A, L, 2), mean (L, 2)) px
    matched, mismatched = 0, []
    m = len(sources)
    for image_id, image_path in sorted(images.items()):
        log.current_id = image_id  # problems found now belong to this image (LandmarkSet.dropped)
        found = {src.name: _read(desc, src, image_id) for src in sources}
        present = {k: v for k, v in found.items() if v is not None}
        if not present:
            where = "; ".join(_describe_absent(desc, s, image_id) for s in sources)
            if desc.is_table:
                log.add(image_path, f"image has {where} (not annotated; skipped)", fatal=False)
            else:
                log.add(image_path, f"image without annotation ({where}; skipped)", fatal=False)
            continue
        absent = [k for k in found if found[k] is None]
        if absent and desc.require_all:
            log.add(image_path, f"no {' and '.join(absent)} annotation; ground truth "
                    f"{choices.options.get('annotator', 'mean')!r} needs {' and '.join(found)}")
            continue
        for parsed, path, _ in present.values():
            if parsed.n_found is not None:
                if parsed.n_found == n:
                    matched += 1
                else:
                    mismatched.append((path, parsed.n_found))
        valid = {k: v for k, v in present.items() if v[0].xy is not None}
        usable = bool(valid) and not (desc.require_all and len(valid) < m)
        suffix = "" if usable else None
        if usable and len(valid) < m:
            suffix = f"; left out of the mean (ground truth from {len(valid)} of {m} annotations)"
        for parsed, path, context in present.values():
            for error in parsed.errors:
                log.add(path, context + error + (suffix or ""), fatal=not usable)
        if not usable:
            continue
        for k in absent:
            log.add(image_path, f"{_describe_absent(desc, found_src(sources, k), image_id)}: ground truth "
                    f"from {len(valid)} of {m} annotations", fatal=False)

        size_wh = None
        points = [v[0].xy for v in valid.values()]
        if desc.units == "ratio":
            size_wh, reason = probe_image(image_path, verify_images)
            if size_wh is None:
                log.add(image_path, f"unreadable image: {reason}")
                continue
            points = [p * np.asarray(size_wh, dtype=np.float64) for p in points]
        xy = np.mean(points, axis=0) if len(points) > 1 else points[0]
        if len(points) == 1:
            _, where, context = next(iter(valid.values()))
        else:
            where, context = image_path, ""
        if choices.pair is not None:
            a, b = choices.pair
            if np.linalg.norm(xy[a] - xy[b]) <= 0:
                log.add(where, f"{context}wrist landmarks {a + 1} and {b + 1} coincide; no mm scale")
                continue
        broken = order_problem(xy, *desc.order) if desc.order is not None else None
        if broken is not None:
            log.add(where, f"{context}{broken}")
        if size_wh is not None:
            if not record_landmark_problems(log, where, xy, size_wh, context):
                continue
        else:
            size_wh = validate_sample(log, image_path, xy, verify_images, annotation=where, context=context)
            if size_wh is None:
                continue
        if broken is not None:
            continue
        samples.append(Sample(id=image_id, image=image_path, landmarks=xy, size_wh=size_wh))
        if m > 1 and len(points) == m:
            agreement.append((np.stack(points), xy))
    log.current_id = None

    if not desc.builtin and matched == 0 and mismatched:
        path, count = mismatched[0]
        more = f" (and {len(mismatched) - 1} more files)" if len(mismatched) > 1 else ""
        raise XLMError(f"{desc.where}: landmarks: {n} declared, but no annotation holds {n}: "
                       f"{path} holds {count}{more}")

    marker = read_synthetic_marker(root)
    scale = _scale(desc, choices, marker)
    paper = desc.split_paper
    paper_split = (paper[0], paper[1] - choices.exclusion_size) if paper else (None, None)
    settings = {
        "landmark_names": list(desc.landmark_names),
        "scale": scale,
        "thresholds": tuple(desc.thresholds or (THRESHOLDS_PX if scale.unit == "px" else THRESHOLDS_MM)),
        "train_size": desc.train_size,
        "test_size": desc.test_size,
        "paper_split": paper_split,
        "split_train": desc.split_train,
        "split_ids": _explicit_split(desc, root, [s.id for s in samples], log),
        "synthetic": marker is not None,
        "root": root,
        "images_found": len(images) + len(duplicates),
        "group_by": desc.group_by,
        "options": choices.options,
        "annotator_disagreement": (annotator_disagreement(agreement, scale, list(choices.sources))
                                   if len(choices.sources) > 1 else None),
    }
    return samples, log, settings


def found_src(sources: list[_Source], name: str) -> _Source:
    """The opened annotation source called ``name``.

    Args:
        sources: the opened sources.
        name: a source's name.

    Returns:
        That source.

    Raises:
        StopIteration: when none has that name.
    """
    return next(s for s in sources if s.name == name)


def _scale(desc: Descriptor, choices: Choices, marker: dict | None) -> Scale:
    if choices.pair is not None:
        return Scale(unit="mm", wrist_pair=choices.pair, wrist_mm=desc.spacing.width_mm)
    if desc.spacing.mm_per_px is not None:
        # a phantom drawn smaller than the real images records its own spacing
        mm = float(marker["mm_per_px"]) if marker and "mm_per_px" in marker else desc.spacing.mm_per_px
        return Scale(unit="mm", mm_per_px=mm)
    return Scale(unit="px")


def _explicit_split(desc: Descriptor, root: Path, ids: list[str], log: ProblemLog
                    ) -> tuple[list[str], list[str]] | None:
    """``(train, test)`` from ``split.train``/``split.test`` id lists, or ``None`` without lists."""
    if desc.split_train_ids is None and desc.split_test_ids is None:
        return None
    usable = set(ids)
    where = Path(desc.where) if not desc.builtin else root
    listed = set(desc.split_train_ids or ()) | set(desc.split_test_ids or ())
    log.summarise(where, sorted_ids(listed - usable), "ids in split lists are not usable images (ignored)")
    if desc.split_train_ids is not None:
        train = [i for i in sorted_ids(set(desc.split_train_ids) & usable)]
        if desc.split_test_ids is None:
            return train, [i for i in sorted_ids(usable) if i not in set(train)]
        test = sorted_ids(set(desc.split_test_ids) & usable)
        unused = sorted_ids(usable - set(train) - set(test))
        log.summarise(where, unused, "usable images are in neither split.train nor split.test (unused)")
        return train, test
    test = sorted_ids(set(desc.split_test_ids) & usable)
    return [i for i in sorted_ids(usable) if i not in set(test)], test


def annotator_disagreement(per_image: list[tuple[np.ndarray, np.ndarray]], scale: Scale,
                           sources: list[str]) -> dict:
    """Inter-annotator error per landmark over the images every annotator marked validly.

    The error of one landmark in one image is the mean distance over annotator pairs (A = 2:
    their distance), converted to the dataset's unit with ``scale`` (from the ground truth).

    Args:
        per_image: ``[(annotations (A, L, 2) px, ground truth (L, 2) px)]``.
        scale: the dataset's unit rule.
        sources: the annotator names.

    Returns:
        ``{"annotators", "n_images", "unit", "mre", "per_landmark_mre", "mre_px",
        "per_landmark_mre_px"}`` (the error entries None when no image qualifies).
    """
    out = {"annotators": list(sources), "n_images": len(per_image), "unit": scale.unit,
           "mre": None, "per_landmark_mre": None, "mre_px": None, "per_landmark_mre_px": None}
    if not per_image:
        return out
    errors_px = []
    for stack, _ in per_image:
        a = stack.shape[0]
        pairs = [np.linalg.norm(stack[i] - stack[j], axis=-1) for i in range(a) for j in range(i + 1, a)]
        errors_px.append(np.mean(pairs, axis=0))
    errors_px = np.asarray(errors_px)  # (N, L)
    factors = scale.factors(np.stack([gt for _, gt in per_image]))  # (N,)
    errors = errors_px * factors[:, None]
    out.update({
        "mre": float(errors.mean()),
        "per_landmark_mre": [float(v) for v in errors.mean(axis=0)],
        "mre_px": float(errors_px.mean()),
        "per_landmark_mre_px": [float(v) for v in errors_px.mean(axis=0)],
    })
    return out
