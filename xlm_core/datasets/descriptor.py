"""Dataset descriptors (``dataset.yaml``): a dataset described in a few lines, no loader to write.

Schema (unknown keys are errors; paths are relative to the dataset root, which is the
descriptor's folder unless ``root`` or the ``root`` argument of ``load_dataset`` says otherwise)::

    name: my_ceph                     # the dataset's name in results (not head/hand/chest)
    images: pictures/*.tif            # glob (or a list: an id found by an earlier glob wins; or
                                      #   {alternative: glob(s)} chosen by option image_format)
                                      # id = file stem; extension matched case-insensitively
    annotations:
      format: labelme                 # labelme | landmark_csv | isbi_txt | payer_csv | ratio_txt
                                      #   | aasce_csv
      sources:                        # one or more; several annotators -> ground truth = their mean
        - "reader_a/{id}.json"        # per-image files: a pattern with {id};
        - "reader_b/{id}.json"        # landmark_csv / payer_csv: one table file per source
                                      # (a mapping {annotator name: pattern} names the sources)
      units: px                       # px | ratio (fractions of width and height)
      index: labels/filenames.csv     # aasce_csv only: the image file of each table row, one a line
      require_all: false              # true: an image needs every source (else: mean of the valid)
    landmarks: 19                     # a count, or a list of names (LabelMe labels map to this order)
    spacing_mm: 0.1                   # mm per pixel, null for pixels, or {pair: [2, 6], width_mm: 50}
                                      #   (pair 1-based; optional named_pairs: {name: [a, b]})
    split: {train: 0.67}              # train: count | fraction | [ids]; test: [ids];
                                      #   paper: [train, total] (the paper's first-N rule)
    exclude: [id, ...]                # ids never used (or {name: [ids]} chosen by option exclusion)
    thresholds: [2, 2.5, 3, 4]        # SDR thresholds (default 2, 2.5, 3, 4 mm or 3, 6, 9 px)
    train_size: [512, 512]            # (H, W) the network trains at; test_size defaults to it
    test_size: [512, 512]
    root: .                           # optional: the dataset root, relative to this file
    source_folder: my_ceph_dataset    # optional: the folder name the public source gives the set;
                                      #   a root holding that folder means the folder inside it
    order: {group: 4, axis: y}        # optional anatomy rule: landmarks in consecutive groups of
                                      #   `group` (one structure each, e.g. a vertebra's corners)
                                      #   whose centres must increase strictly along `axis`
                                      #   (y grows downwards); an image breaking it is refused
    group_by: '-(\\d+) [A-Z]+ AP$'    # optional: ids whose first regex group is equal share a
                                      #   patient and never straddle cross-validation folds
    repository:                       # optional (needs source_folder): the public git repository
      url: https://github.com/o/r     #   holding source_folder at its top, and the commit that
      commit: 0123...cdef             #   `xlm data fetch` checks out (the full id)
    description: "..."                # optional free text

Formats: ``labelme`` (``shapes`` of ``shape_type: point``; labels are landmark names or
1-based numbers ``7``, ``l7``, ``L7``), ``landmark_csv`` (``image_id,landmark,x,y``,
landmark 1-based), ``isbi_txt`` (ISBI 2015: ``x,y`` lines, then label lines), ``payer_csv``
(``id,x1,y1,...`` without header), ``ratio_txt`` (line 1 the count, then ``x_ratio y_ratio``),
``aasce_csv`` (AASCE / SpineWeb 16: one header-less row an image, L x ratios then L y ratios,
rows in the order of the ``index`` file's image names).

The paper's datasets are built-in descriptors of this kind (``descriptors/{head,hand,chest}.yaml``):
``load_dataset("head", ROOT)`` reads ``head.yaml`` with ``ROOT`` as the dataset root. Two public
sets large enough to train on are built in too (``ceph``: Hamedan University cephalograms,
``spine``: AASCE training images); they name their ``source_folder``, so ``ROOT`` may be the
dataset folder or a data root holding it under the public repository's folder name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlm_core import XLMError

PAPER_NAMES = ("head", "hand", "chest")
#: the paper's datasets, then public sets large enough to train on (ceph: Hamedan; spine: AASCE)
BUILTIN_NAMES = PAPER_NAMES + ("ceph", "spine")
BUILTIN_DIR = Path(__file__).resolve().parent / "descriptors"
FORMATS = ("labelme", "landmark_csv", "isbi_txt", "payer_csv", "ratio_txt", "aasce_csv")
TABLE_FORMATS = ("landmark_csv", "payer_csv", "aasce_csv")
RATIO_FORMATS = ("ratio_txt", "aasce_csv")  # formats that hold fractions of (W, H) only
INDEXED_FORMATS = ("aasce_csv",)  # tables whose rows an index file names (annotations.index)
UNITS = ("px", "ratio")
KEYS = ("name", "images", "annotations", "landmarks", "spacing_mm", "split", "exclude",
        "thresholds", "train_size", "test_size", "root", "source_folder", "repository", "description",
        "order", "group_by")
REQUIRED_KEYS = ("images", "annotations", "landmarks")
ANNOTATION_KEYS = ("format", "sources", "units", "require_all", "index")
SPLIT_KEYS = ("train", "test", "paper")
SPACING_KEYS = ("pair", "width_mm", "named_pairs")
ORDER_KEYS = ("group", "axis")
REPOSITORY_KEYS = ("url", "commit")
DEFAULT_ALTERNATIVE = "default"
DESCRIPTOR_FILE = "dataset.yaml"


@dataclass(frozen=True)
class SpacingRule:
    """How pixels become mm: a fixed ``mm_per_px``, a landmark pair of known width, or pixels.

    Attributes:
        mm_per_px: a fixed spacing, or None.
        pair: 0-based landmark pair whose distance is ``width_mm``, or None.
        width_mm: the pair's assumed distance in mm.
        named_pairs: other pairs a loader option may name, ``{name: (a, b)}`` 0-based.
    """

    mm_per_px: float | None = None
    pair: tuple[int, int] | None = None
    width_mm: float = 50.0
    named_pairs: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Descriptor:
    """A parsed, validated ``dataset.yaml`` (or a built-in one). See the module docstring.

    Attributes:
        name: the dataset's name.
        where: what error messages call it: the YAML path, or "built-in descriptor 'head'".
        folder: the default dataset root (None: a root must be given).
        images: image alternative -> globs, in preference order.
        format: the annotation format.
        sources: annotator name -> pattern (or table file).
        units: ``"px"`` or ``"ratio"`` (coordinates as fractions of the image size).
        index: ``aasce_csv``: the file naming each table row's image, relative to the root; else
            None.
        require_all: with several sources, an image missing one is unusable.
        landmark_names: L names.
        names_given: ``landmarks`` was a list of names (LabelMe labels may use them).
        spacing: the mm rule.
        split_train: the training count or fraction, or None.
        split_train_ids, split_test_ids: explicit id lists, or None.
        split_paper: ``(train, total)`` of the paper's split, or None.
        exclude: ids always left out.
        named_exclusions: exclusion lists a loader option may choose.
        thresholds: SDR thresholds, or None (the unit's defaults).
        train_size, test_size: ``(H, W)``.
        builtin: a packaged descriptor.
        source_folder: the folder name the public source gives the dataset (a root holding it
            means that folder), or None.
        order: ``(group, axis)``: landmarks in consecutive groups of ``group`` whose centres
            must increase strictly along ``axis`` (0 x, 1 y), or None.
        group_by: a regex whose first group names an id's patient (cross-validation keeps a
            patient's images in one fold), or None.
        repository: ``(url, commit)`` of the public git repository holding ``source_folder``
            (what ``xlm data fetch`` clones), or None.
        digest: hash of the normalised description (part of a user dataset's fingerprint).
    """

    name: str
    where: str  # what error messages call it: the YAML path, or "built-in descriptor 'head'"
    folder: Path | None  # default dataset root (None: a root must be given)
    images: dict[str, tuple[str, ...]]  # alternative -> globs, in preference order
    format: str
    sources: dict[str, str]  # annotator name -> pattern (or table file)
    units: str
    index: str | None  # aasce_csv: the file naming each row's image
    require_all: bool
    landmark_names: tuple[str, ...]
    names_given: bool  # landmarks was a list of names (LabelMe labels may use them)
    spacing: SpacingRule
    split_train: int | float | None
    split_train_ids: tuple[str, ...] | None
    split_test_ids: tuple[str, ...] | None
    split_paper: tuple[int, int] | None
    exclude: tuple[str, ...]
    named_exclusions: dict[str, tuple[str, ...]]
    thresholds: tuple[float, ...] | None
    train_size: tuple[int, int]
    test_size: tuple[int, int]
    builtin: bool
    source_folder: str | None  # the public source's folder name (a root holding it means it)
    digest: str  # hash of the normalised description (part of a user dataset's fingerprint)
    order: tuple[int, int] | None = None  # (group, axis 0 x / 1 y): group centres must increase
    group_by: str | None = None  # regex: its first group names an id's patient
    repository: tuple[str, str] | None = None  # (url, commit) that `xlm data fetch` clones

    @property
    def n_landmarks(self) -> int:
        """L, the number of landmarks."""
        return len(self.landmark_names)

    @property
    def is_table(self) -> bool:
        """True when the annotations are one table for all images (not one file per image)."""
        return self.format in TABLE_FORMATS

    def options(self) -> list[str]:
        """Loader options this descriptor accepts (besides ``train``, ``strict``, ``verify_images``).

        Returns:
            A subset of ``annotator``, ``image_format``, ``wrist_pair``, ``exclusion``.
        """
        found = []
        if len(self.sources) > 1:
            found.append("annotator")
        if len(self.images) > 1:
            found.append("image_format")
        if self.spacing.pair is not None:
            found.append("wrist_pair")
        if self.named_exclusions:
            found.append("exclusion")
        return found


# --------------------------------------------------------------------------- reading


def is_descriptor_path(name: Any) -> bool:
    """Whether ``name`` names a descriptor rather than a built-in loader.

    Args:
        name: a dataset name or path.

    Returns:
        True for a ``.yaml``/``.yml`` name, or a folder (not a built-in name) holding
        ``dataset.yaml``.
    """
    text = str(name)
    if text.endswith((".yaml", ".yml")):
        return True
    path = Path(text)
    return text not in BUILTIN_NAMES and path.is_dir() and (path / DESCRIPTOR_FILE).is_file()


def descriptor_file(name: str | os.PathLike) -> Path:
    """The YAML file ``name`` points at (a folder means its ``dataset.yaml``).

    Args:
        name: a YAML file or a folder.

    Returns:
        The file's ``Path``.

    Raises:
        XLMError: when the file does not exist.
    """
    path = Path(name)
    if path.is_dir():
        path = path / DESCRIPTOR_FILE
    if not path.is_file():
        raise XLMError(f"{path}: dataset descriptor not found")
    return path


def read_yaml(path: Path) -> Any:
    """Read a descriptor's YAML.

    Args:
        path: the YAML file.

    Returns:
        What it holds (``yaml.safe_load``).

    Raises:
        XLMError: when the file cannot be read or parsed.
    """
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise XLMError(f"{path}: cannot read dataset descriptor ({exc})") from None


def read_descriptor(path: str | os.PathLike) -> Descriptor:
    """Parse and validate a ``dataset.yaml``.

    Args:
        path: the YAML file or its folder (the folder is the default dataset root).

    Returns:
        The :class:`Descriptor`.

    Raises:
        XLMError: naming the file and the key that is wrong.
    """
    path = descriptor_file(path)
    spec = read_yaml(path)
    return parse_descriptor(spec, where=str(path), folder=path.resolve().parent)


def builtin_descriptor(name: str) -> Descriptor:
    """The packaged descriptor of a paper dataset.

    Args:
        name: one of :data:`BUILTIN_NAMES` (``head``, ``hand``, ``chest``, ``ceph``, ``spine``).

    Returns:
        The :class:`Descriptor` (no default root).

    Raises:
        XLMError: for another name.
    """
    if name not in BUILTIN_NAMES:
        raise XLMError(f"no built-in descriptor {name!r}; built-in: {list(BUILTIN_NAMES)}")
    path = BUILTIN_DIR / f"{name}.yaml"
    return parse_descriptor(read_yaml(path), where=f"built-in descriptor {name!r}", folder=None,
                            builtin=True)


# --------------------------------------------------------------------------- validation


def _fail(where: str, key: str, problem: str) -> XLMError:
    return XLMError(f"{where}: {key}: {problem}")


def _check_keys(where: str, prefix: str, mapping: dict, allowed: tuple[str, ...]) -> None:
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        shown = ", ".join(repr(f"{prefix}{k}") for k in unknown)
        raise XLMError(f"{where}: unknown key {shown}; allowed: {list(allowed)}")


def _int(where: str, key: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, key, f"expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _number(where: str, key: str, value: Any, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, key, f"expected a number, got {value!r}")
    if positive and not float(value) > 0:
        raise _fail(where, key, f"expected a positive number, got {value!r}")
    return float(value)


def _globs(where: str, key: str, value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(g, str) and g.strip() for g in items):
        raise _fail(where, key, f"expected a glob or a list of globs, got {value!r}")
    for glob in items:
        if Path(glob).is_absolute() or ".." in Path(glob).parts:
            raise _fail(where, key, f"glob {glob!r} must stay inside the dataset root (relative, no '..')")
    return tuple(items)


def _pair(where: str, key: str, value: Any, n: int) -> tuple[int, int]:
    """A 1-based pair from the YAML -> 0-based."""
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, key, f"expected two 1-based landmark numbers [a, b], got {value!r}")
    a, b = (_int(where, key, v, 1) for v in value)
    if a == b or a > n or b > n:
        raise _fail(where, key, f"expected two different landmark numbers in 1..{n}, got {value!r}")
    return a - 1, b - 1


def _size(where: str, key: str, value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, key, f"expected [H, W], got {value!r}")
    return _int(where, key, value[0], 1), _int(where, key, value[1], 1)


def _ids(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(where, key, f"expected a list of image ids, got {value!r}")
    return tuple(str(v) for v in value)


def _sources(where: str, fmt: str, value: Any) -> dict[str, str]:
    key = "annotations.sources"
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise _fail(where, key, f"expected one or more patterns, got {value!r}")
        if len(set(value)) != len(value):
            raise _fail(where, key, "the same source is listed twice")
        sources = {v: v for v in value}
    elif isinstance(value, dict) and value:
        if not all(isinstance(v, str) and v.strip() for v in value.values()):
            raise _fail(where, key, f"expected {{annotator: pattern}}, got {value!r}")
        sources = {str(k): v for k, v in value.items()}
        if "mean" in sources:
            raise _fail(where, key, "'mean' is reserved (option annotator: mean); rename that source")
    else:
        raise _fail(where, key, f"expected a pattern, a list of patterns or {{annotator: pattern}}, got {value!r}")
    for pattern in sources.values():
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise _fail(where, key, f"{pattern!r} must stay inside the dataset root (relative, no '..')")
        has_id = "{id}" in pattern
        if fmt in TABLE_FORMATS and has_id:
            raise _fail(where, key, f"{pattern!r}: a {fmt} source is one table file (no {{id}})")
        if fmt not in TABLE_FORMATS and not has_id:
            raise _fail(where, key, f"{pattern!r}: a {fmt} source needs {{id}} (one file per image)")
        rest = pattern.replace("{id}", "")
        if "{" in rest or "}" in rest or any(c in pattern for c in "*?["):
            raise _fail(where, key, f"{pattern!r}: only the placeholder {{id}} is allowed (no globs)")
    return sources


def _spacing(where: str, value: Any, n: int) -> SpacingRule:
    key = "spacing_mm"
    if value is None:
        return SpacingRule()
    if isinstance(value, dict):
        _check_keys(where, "spacing_mm.", value, SPACING_KEYS)
        if "pair" not in value:
            raise _fail(where, key, "a mapping needs pair: [a, b] (1-based) and width_mm")
        pair = _pair(where, "spacing_mm.pair", value["pair"], n)
        width = _number(where, "spacing_mm.width_mm", value.get("width_mm", 50.0))
        named_raw = value.get("named_pairs") or {}
        if not isinstance(named_raw, dict):
            raise _fail(where, "spacing_mm.named_pairs", f"expected {{name: [a, b]}}, got {named_raw!r}")
        named = {str(k): _pair(where, f"spacing_mm.named_pairs.{k}", v, n) for k, v in named_raw.items()}
        return SpacingRule(pair=pair, width_mm=width, named_pairs=named)
    return SpacingRule(mm_per_px=_number(where, key, value))


def _split(where: str, value: Any) -> tuple:
    if value is None:
        return None, None, None, None
    if not isinstance(value, dict):
        raise _fail(where, "split", f"expected a mapping such as {{train: 0.8}}, got {value!r}")
    _check_keys(where, "split.", value, SPLIT_KEYS)
    train = value.get("train")
    train_value = train_ids = test_ids = paper = None
    if isinstance(train, list):
        train_ids = _ids(where, "split.train", train)
    elif train is not None:
        if isinstance(train, bool) or not isinstance(train, (int, float)):
            raise _fail(where, "split.train", f"expected a count, a fraction or a list of ids, got {train!r}")
        if isinstance(train, float) and not (0 < train < 1 or train.is_integer()):
            raise _fail(where, "split.train", f"a fraction must lie in (0, 1), got {train!r}")
        if train < 0:
            raise _fail(where, "split.train", f"expected a count >= 0, got {train!r}")
        train_value = train
    if "test" in value:
        test_ids = _ids(where, "split.test", value["test"])
        if train_value is not None:
            raise _fail(where, "split.test", "an explicit test list goes with train: [ids] or alone")
    if "paper" in value:
        raw = value["paper"]
        if not isinstance(raw, list) or len(raw) != 2:
            raise _fail(where, "split.paper", f"expected [train count, total count], got {raw!r}")
        paper = (_int(where, "split.paper", raw[0], 0), _int(where, "split.paper", raw[1], 1))
        if train is not None or test_ids is not None:
            raise _fail(where, "split.paper", "give either paper or train/test")
    if train_ids is not None and test_ids is not None and set(train_ids) & set(test_ids):
        shown = sorted(set(train_ids) & set(test_ids))[:5]
        raise _fail(where, "split", f"ids in both train and test: {shown}")
    return train_value, train_ids, test_ids, paper


def _exclude(where: str, value: Any) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    if value is None:
        return (), {}
    if isinstance(value, dict):
        return (), {str(k): _ids(where, f"exclude.{k}", v) for k, v in value.items()}
    return _ids(where, "exclude", value), {}


def _repository(where: str, value: Any, source_folder: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(where, "repository", f"expected a mapping {{url: ..., commit: ...}}, got {value!r}")
    _check_keys(where, "repository.", value, REPOSITORY_KEYS)
    url, commit = value.get("url"), value.get("commit")
    if not isinstance(url, str) or not url.strip():
        raise _fail(where, "repository.url", f"expected the repository's address, got {url!r}")
    if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise _fail(where, "repository.commit", f"expected a full commit id (40 or 64 lower-case "
                    f"hex digits), got {commit!r}")
    if source_folder is None:
        raise _fail(where, "repository", "needs source_folder: the repository's folder that holds the set")
    return url.strip(), commit


def _landmarks(where: str, value: Any) -> tuple[tuple[str, ...], bool]:
    if isinstance(value, list):
        names = [str(v).strip() for v in value]
        if not names or not all(names):
            raise _fail(where, "landmarks", "expected a count or a non-empty list of names")
        if len({n.lower() for n in names}) != len(names):
            raise _fail(where, "landmarks", "landmark names must be unique (case-insensitive)")
        return tuple(names), True
    count = _int(where, "landmarks", value, 1)
    return tuple(f"L{i}" for i in range(1, count + 1)), False


def parse_descriptor(spec: Any, where: str, folder: Path | None, builtin: bool = False) -> Descriptor:
    """Validate a descriptor mapping (as read from YAML).

    Args:
        spec: the mapping.
        where: what error messages call it.
        folder: the default dataset root, or None.
        builtin: a packaged descriptor.

    Returns:
        The :class:`Descriptor`.

    Raises:
        XLMError: naming ``where`` and the key, for a missing, unknown or invalid key.
    """
    if not isinstance(spec, dict):
        raise XLMError(f"{where}: a dataset descriptor must be a mapping of keys ({list(KEYS)})")
    _check_keys(where, "", spec, KEYS)
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise XLMError(f"{where}: missing key(s) {missing}")
    name = spec.get("name")
    if name is None:
        name = folder.name if folder is not None else "dataset"
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, "name", f"expected a text, got {name!r}")
    name = name.strip()
    if not builtin and name in BUILTIN_NAMES:
        raise _fail(where, "name", f"{name!r} is reserved for the built-in descriptor; "
                    f"use load_dataset({name!r}, ROOT) or choose another name")

    images = spec["images"]
    if isinstance(images, dict):
        if not images:
            raise _fail(where, "images", "expected at least one alternative")
        alternatives = {str(k): _globs(where, f"images.{k}", v) for k, v in images.items()}
        if "auto" in alternatives:
            raise _fail(where, "images", "'auto' is reserved (option image_format: auto)")
    else:
        alternatives = {DEFAULT_ALTERNATIVE: _globs(where, "images", images)}

    ann = spec["annotations"]
    if not isinstance(ann, dict):
        raise _fail(where, "annotations", f"expected a mapping with format and sources, got {ann!r}")
    _check_keys(where, "annotations.", ann, ANNOTATION_KEYS)
    fmt = ann.get("format")
    if fmt not in FORMATS:
        raise _fail(where, "annotations.format", f"{fmt!r} is not one of {list(FORMATS)}")
    if "sources" not in ann:
        raise _fail(where, "annotations.sources", "missing (one or more annotation files or patterns)")
    sources = _sources(where, fmt, ann["sources"])
    units = ann.get("units", "ratio" if fmt in RATIO_FORMATS else "px")
    if units not in UNITS:
        raise _fail(where, "annotations.units", f"{units!r} is not one of {list(UNITS)}")
    if fmt in RATIO_FORMATS and units != "ratio":
        raise _fail(where, "annotations.units", f"{fmt} files hold ratios (units: ratio)")
    index = ann.get("index")
    if fmt in INDEXED_FORMATS:
        if not isinstance(index, str) or not index.strip():
            raise _fail(where, "annotations.index", f"a {fmt} table needs index: the file naming "
                        "the image of each row (e.g. labels/training/filenames.csv)")
        if Path(index).is_absolute() or ".." in Path(index).parts:
            raise _fail(where, "annotations.index", f"{index!r} must stay inside the dataset root "
                        "(relative, no '..')")
    elif index is not None:
        raise _fail(where, "annotations.index", f"only {list(INDEXED_FORMATS)} tables take an index file")
    require_all = ann.get("require_all", False)
    if not isinstance(require_all, bool):
        raise _fail(where, "annotations.require_all", f"expected true or false, got {require_all!r}")

    names, names_given = _landmarks(where, spec["landmarks"])
    spacing = _spacing(where, spec.get("spacing_mm"), len(names))
    split_train, train_ids, test_ids, paper = _split(where, spec.get("split"))
    exclude, named_exclusions = _exclude(where, spec.get("exclude"))
    thresholds = spec.get("thresholds")
    if thresholds is not None:
        if not isinstance(thresholds, list) or not thresholds:
            raise _fail(where, "thresholds", f"expected a list of numbers, got {thresholds!r}")
        thresholds = tuple(_number(where, "thresholds", t) for t in thresholds)
    train_size = _size(where, "train_size", spec.get("train_size", [512, 512]))
    test_size = _size(where, "test_size", spec["test_size"]) if "test_size" in spec else train_size
    root = spec.get("root")
    if root is not None and not isinstance(root, str):
        raise _fail(where, "root", f"expected a folder path, got {root!r}")
    if folder is not None and root:
        folder = (folder / root).resolve()
    source_folder = spec.get("source_folder")
    if source_folder is not None and (not isinstance(source_folder, str) or not source_folder.strip()
                                      or len(Path(source_folder).parts) != 1 or source_folder in (".", "..")):
        raise _fail(where, "source_folder", f"expected one folder name, got {source_folder!r}")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail(where, "description", f"expected a text, got {description!r}")
    order = _order(where, spec.get("order"), len(names))
    group_by = _group_by(where, spec.get("group_by"))
    repository = _repository(where, spec.get("repository"), source_folder)

    # where the data are published is not what they are: none of these enters the digest
    normalised = {k: v for k, v in spec.items()
                  if k not in ("root", "source_folder", "repository", "description")}
    digest = hashlib.sha256(json.dumps(normalised, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Descriptor(
        name=name, where=where, folder=folder, images=alternatives, format=fmt, sources=sources,
        units=units, index=index, require_all=require_all, landmark_names=names, names_given=names_given,
        spacing=spacing, split_train=split_train, split_train_ids=train_ids, split_test_ids=test_ids,
        split_paper=paper, exclude=exclude, named_exclusions=named_exclusions, thresholds=thresholds,
        train_size=train_size, test_size=test_size, builtin=builtin,
        source_folder=source_folder, digest=digest, repository=repository, order=order, group_by=group_by,
    )


def _order(where: str, value: Any, n_landmarks: int) -> tuple[int, int] | None:
    """``order: {group: G, axis: x|y}`` -> ``(G, 0|1)``; G must divide the landmark count."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(where, "order", f"expected a mapping {{group: N, axis: x|y}}, got {value!r}")
    _check_keys(where, "order.", value, ORDER_KEYS)
    group = _int(where, "order.group", value.get("group"), minimum=1)
    if n_landmarks % group or n_landmarks // group < 2:
        raise _fail(where, "order.group", f"{group} does not cut the {n_landmarks} landmarks into two or "
                    "more equal groups")
    axis = value.get("axis")
    if axis not in ("x", "y"):
        raise _fail(where, "order.axis", f"expected x or y, got {axis!r}")
    return group, "xy".index(axis)


def _group_by(where: str, value: Any) -> str | None:
    """``group_by``: a regex with at least one group."""
    import re

    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(where, "group_by", f"expected a regular expression, got {value!r}")
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise _fail(where, "group_by", f"{value!r} is not a regular expression: {exc}") from None
    if pattern.groups < 1:
        raise _fail(where, "group_by", f"{value!r} has no group '(...)' naming the patient")
    return value
