"""Dataset descriptors (``dataset.yaml``): a dataset described in a few lines, no loader to write.

The keys, their values and defaults are the pydantic model :class:`DescriptorSpec` (each field's
description says what it means); ``xlm data schema`` prints its JSON Schema, checked in as
``studies/dataset.schema.json`` and shipped beside this module as ``dataset.schema.json``, which
the built-in descriptors name on their first line for editors. ``book/own_dataset.md`` walks
through writing one. Every problem of a file is reported at once, each with its path
(:class:`~xlm_core.validation.SettingsError`). Paths are relative to the dataset root: the
descriptor's folder unless ``root`` (or the ``root`` argument of ``load_dataset``) says otherwise.

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
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from xlm_core import XLMError
from xlm_core.config import Size
from xlm_core.validation import STRICT, SettingsError, by_type, problem, problem_at, problems_of, raise_problems, shown

PAPER_NAMES = ("head", "hand", "chest")
#: the paper's datasets, then public sets large enough to train on (ceph: Hamedan; spine: AASCE)
BUILTIN_NAMES = PAPER_NAMES + ("ceph", "spine")
BUILTIN_DIR = Path(__file__).resolve().parent / "descriptors"
#: the JSON Schema of a dataset.yaml shipped with the package (``xlm data schema`` writes it)
SCHEMA_FILE = Path(__file__).resolve().parent / "dataset.schema.json"
FORMATS = ("labelme", "landmark_csv", "isbi_txt", "payer_csv", "ratio_txt", "aasce_csv")
TABLE_FORMATS = ("landmark_csv", "payer_csv", "aasce_csv")
RATIO_FORMATS = ("ratio_txt", "aasce_csv")  # formats that hold fractions of (W, H) only
INDEXED_FORMATS = ("aasce_csv",)  # tables whose rows an index file names (annotations.index)
UNITS = ("px", "ratio")
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
    """A parsed, validated ``dataset.yaml`` (or a built-in one): what :class:`DescriptorSpec` holds,
    resolved (names given or made, globs and sources as mappings, 1-based pairs made 0-based).

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
        XLMError: when the file is missing or unreadable; :class:`SettingsError` naming the file
            and every problem of it, each with its path.
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


# --------------------------------------------------------------------------- the schema
#
# A dataset.yaml is the model DescriptorSpec: constraints in its types, one description a field,
# unknown keys refused (STRICT). A check that needs an earlier key (the format, the landmark
# count, source_folder) reads it from ValidationInfo.data and is skipped when that key is wrong.


def _inside_root(path: str) -> str:
    if Path(path).is_absolute() or ".." in Path(path).parts:
        raise problem(f"{path!r} must stay inside the dataset root (relative, no '..')")
    return path


def _only_id(pattern: str) -> str:
    rest = pattern.replace("{id}", "")
    if "{" in rest or "}" in rest or any(c in pattern for c in "*?["):
        raise problem(f"{pattern!r}: only the placeholder {{id}} is allowed (no globs)")
    return pattern


def _one_folder(name: str) -> str:
    if not name.strip() or len(Path(name).parts) != 1 or name in (".", ".."):
        raise problem(f"expected one folder name, got {name!r}")
    return name


def _regex_with_group(value: str) -> str:
    try:
        groups = re.compile(value).groups
    except re.error as exc:
        raise problem(f"{value!r} is not a regular expression: {exc}") from None
    if groups < 1:
        raise problem(f"{value!r} has no group '(...)' naming the patient")
    return value


def _count_or_fraction(train: float) -> float:
    if not (0 < train < 1 or train.is_integer()):
        raise problem(f"a fraction must lie in (0, 1), got {train!r}")
    if train < 0:
        raise problem(f"expected a count >= 0, got {train!r}")
    return train


def _listed_once(what: str, same: Any = str, note: str = "") -> AfterValidator:
    """A list whose items (compared as ``same(item)``) appear once; a repeat is named at its index."""

    def check(items: list) -> list:
        seen = [same(v) for v in items]
        raise_problems(what, [problem_at((i,), f"{v!r} is listed twice{note}", v) for i, v in enumerate(items)
                              if seen[i] in seen[:i]])
        return items

    return AfterValidator(check)


def _reserved(key: str, option: str) -> AfterValidator:
    """A mapping without the key ``key``, which the loader option ``option`` means."""

    def check(mapping: dict) -> dict:
        if key in mapping:
            raise_problems(key, [problem_at((key,), f"{key!r} is reserved (option {option}: {key}); "
                                            "choose another name", mapping[key])])
        return mapping

    return AfterValidator(check)


def _id_text(value: Any) -> Any:
    """An id written as a number (``test: [71, 72]``) is its text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _as_tuple(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _zero_based(pair: tuple[int, int]) -> tuple[int, int]:
    return pair[0] - 1, pair[1] - 1


def _landmark_count(info: ValidationInfo) -> int | None:
    """L, from the ``landmarks`` already validated (None when it is wrong)."""
    value = info.data.get("landmarks")
    return value if isinstance(value, int) or value is None else len(value)


Text = Annotated[str, Field(pattern=r"\S")]  # not blank
InRoot = Annotated[Text, AfterValidator(_inside_root)]  # a path relative to the dataset root
Globs = Annotated[
    Annotated[InRoot, Tag("~glob")] | Annotated[list[InRoot], Field(min_length=1), Tag("~globs")],
    by_type(glob=str, globs=list),
]
Pattern = Annotated[InRoot, AfterValidator(_only_id)]
Id = Annotated[str, BeforeValidator(_id_text, json_schema_input_type=str | int)]
Ids = list[Id]
Positive = Annotated[float, Field(gt=0)]
Number1 = Annotated[int, Field(ge=1)]
# a YAML list of two (strict tuples take Python tuples only; the items stay strict)
Pair = Annotated[tuple[Number1, Number1], Strict(False)]
Names = Annotated[list[Text], Field(min_length=1),
                  _listed_once("landmarks", lambda v: v.strip().lower(), " (names are unique in any case)")]


class _Keys(BaseModel):
    model_config = STRICT


class Annotations(_Keys):
    """The landmark files: how they are written and where each annotator's are."""

    format: Literal[FORMATS] = Field(
        description="labelme: a LabelMe JSON an image (point shapes labelled with a landmark name or a 1-based "
        "number 7, l7, L7); landmark_csv: one table image_id,landmark,x,y; isbi_txt: ISBI 2015 text files; "
        "payer_csv: one table id,x1,y1,... without header; ratio_txt: a count line, then x_ratio y_ratio "
        "lines; aasce_csv: one header-less row an image, L x ratios then L y ratios (rows named by index)")
    sources: Annotated[
        Annotated[Pattern, Tag("~pattern")]
        | Annotated[list[Pattern], Field(min_length=1), _listed_once("sources"), Tag("~patterns")]
        | Annotated[dict[str, Pattern], Field(min_length=1), _reserved("mean", "annotator"), Tag("~named")],
        by_type(pattern=str, patterns=list, named=dict),
    ] = Field(description="each annotator's files: a pattern with {id} (reader_a/{id}.json), or the table file "
              "of landmark_csv, payer_csv, aasce_csv; a list of several (ground truth: their mean), or "
              "{annotator name: pattern} (the option annotator picks one)")
    units: Literal[UNITS] | None = Field(
        None, description="px: pixels; ratio: fractions of the image width and height (default: ratio for "
        "ratio_txt and aasce_csv, which hold nothing else, px for the other formats)")
    index: InRoot | None = Field(
        None, validate_default=True, description="aasce_csv only: the file naming the image of each table "
        "row, one a line (e.g. labels/training/filenames.csv)")
    require_all: bool = Field(
        False, description="true: an image needs every annotator's file, complete (the ISBI rule); false: a "
        "missing or broken file is reported and left out of the mean")

    @field_validator("sources")
    @classmethod
    def _per_format(cls, sources: Any, info: ValidationInfo) -> Any:
        fmt = info.data.get("format")  # None: the format itself is wrong
        items = ({(): sources} if isinstance(sources, str) else {(k,): v for k, v in sources.items()}
                 if isinstance(sources, dict) else {(i,): v for i, v in enumerate(sources)})
        errors = []
        for loc, pattern in items.items() if fmt is not None else ():
            if fmt in TABLE_FORMATS and "{id}" in pattern:
                errors.append(problem_at(loc, f"{pattern!r}: a {fmt} source is one table file (no {{id}})"))
            elif fmt not in TABLE_FORMATS and "{id}" not in pattern:
                errors.append(problem_at(loc, f"{pattern!r}: a {fmt} source needs {{id}} (one file per image)"))
        raise_problems("sources", errors)
        return sources

    @field_validator("units")
    @classmethod
    def _ratio_formats(cls, units: str | None, info: ValidationInfo) -> str | None:
        fmt = info.data.get("format")
        if fmt in RATIO_FORMATS and units not in (None, "ratio"):
            raise problem(f"{fmt} files hold ratios (units: ratio), got {units!r}")
        return units

    @field_validator("index")
    @classmethod
    def _indexed(cls, index: str | None, info: ValidationInfo) -> str | None:
        fmt = info.data.get("format")
        if fmt in INDEXED_FORMATS and index is None:
            raise problem(f"a {fmt} table needs index: the file naming the image of each row "
                          "(e.g. labels/training/filenames.csv)")
        if fmt is not None and fmt not in INDEXED_FORMATS and index is not None:
            raise problem(f"only {list(INDEXED_FORMATS)} tables take an index file, got {index!r}")
        return index


class SpacingPair(_Keys):
    """mm from a landmark pair of known width (the hand's wrist rule)."""

    pair: Pair = Field(description="two landmark numbers [a, b] (1-based) whose distance is width_mm")
    width_mm: Positive = Field(50.0, description="the pair's distance in mm")
    named_pairs: dict[str, Pair] | None = Field(
        None, description="other pairs the option wrist_pair may name: {name: [a, b]} (1-based)")


class Split(_Keys):
    """Which images train and which test."""

    train: Annotated[
        Annotated[int, Field(ge=0), Tag("~count")]
        | Annotated[float, AfterValidator(_count_or_fraction),
                    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
                    Tag("~fraction")]
        | Annotated[Ids, Tag("~ids")],
        by_type(count=int, fraction=float, ids=list),
    ] | None = Field(None, description="a count or a fraction in (0, 1) of the ids, the first in natural "
                     "order, or the list of training ids; the option train overrides it")
    test: Ids | None = Field(None, description="the list of test ids: alone (every other id trains) or with "
                             "train: [ids] (ids in neither list are unused)")
    paper: Annotated[tuple[Annotated[int, Field(ge=0)], Number1], Strict(False)] | None = Field(
        None, description="[train, total]: the paper's rule, the first train ids of total train (the same "
        "proportion when the root holds another number of images)")

    @model_validator(mode="after")
    def _one_rule(self) -> Split:
        errors = []
        if self.test is not None and self.train is not None and not isinstance(self.train, list):
            errors.append(problem_at(("test",), "an explicit test list goes with train: [ids] or alone"))
        if self.paper is not None and (self.train is not None or self.test is not None):
            errors.append(problem_at(("paper",), "give either paper or train/test", list(self.paper)))
        both = set(self.train) & set(self.test) if isinstance(self.train, list) and self.test else set()
        if both:
            errors.append(problem_at((), f"ids in both train and test: {sorted(both)[:5]}"))
        raise_problems("split", errors)
        return self


class Order(_Keys):
    """An anatomy rule: landmarks in consecutive groups (one structure each, e.g. a vertebra's
    corners) whose centres increase strictly along an axis; an image breaking it is refused."""

    group: Number1 = Field(description="how many landmarks a group holds (a vertebra: its 4 corners); "
                           "it cuts the landmarks into two or more equal groups")
    axis: Literal["x", "y"] = Field(description="the axis along which the groups' centres increase "
                                    "(y grows downwards)")


class Repository(_Keys):
    """The public git repository holding source_folder at its top."""

    url: Text = Field(description="the repository's address (what git clones)")
    commit: str = Field(pattern=r"^([0-9a-f]{40}|[0-9a-f]{64})$", description="the full commit id that "
                        "`xlm data fetch` checks out (40 or 64 lower-case hex digits)")


class DescriptorSpec(_Keys):
    """A dataset described in a few lines (book/own_dataset.md). Paths are relative to the
    dataset root: the descriptor's folder unless root says otherwise."""

    model_config = ConfigDict(title="xlm dataset descriptor (dataset.yaml)")

    name: Text | None = Field(
        None, description="the dataset's name in results, not one of the built-in descriptors' (head, hand, "
        "chest, ceph, spine); default: the descriptor's folder name")
    images: Annotated[
        Annotated[Globs, Tag("~globs")]
        | Annotated[dict[str, Globs], Field(min_length=1), _reserved("auto", "image_format"),
                    Tag("~alternatives")],
        by_type(globs=(str, list), alternatives=dict),
    ] = Field(description="the image files: a glob (an image's id is its file's stem; the extension matches "
              "in any case), a list of globs (an id found by an earlier glob wins), or {alternative: "
              "glob(s)}, chosen with the option image_format")
    annotations: Annotations = Field(description="the landmark files: format, sources, units, index, "
                                     "require_all")
    landmarks: Annotated[
        Annotated[Number1, Tag("~count")]
        | Annotated[Names, Tag("~names")],
        by_type(count=int, names=list),
    ] = Field(description="a count (names L1, L2, ...) or the list of names in order (unique in any case; "
              "LabelMe labels may use them)")
    spacing_mm: Annotated[
        Annotated[Positive, Tag("~mm_per_px")] | Annotated[SpacingPair, Tag("~pair")],
        by_type(mm_per_px=(int, float), pair=dict),
    ] | None = Field(None, description="mm per original pixel; null: errors in pixels; or {pair: [a, b], "
                     "width_mm: w}: w mm over the distance between landmarks a and b (1-based)")
    split: Split | None = Field(None, description="{train: ...}, {test: [ids]}, both lists, or {paper: [train, "
                                "total]}; default: the first 80 % of the ids in natural order train")
    exclude: Annotated[
        Annotated[Ids, Tag("~ids")] | Annotated[dict[str, Ids], Tag("~named")],
        by_type(ids=list, named=dict),
    ] | None = Field(None, description="ids never used, or {name: [ids]}: lists the option exclusion chooses")
    thresholds: Annotated[list[Positive], Field(min_length=1)] | None = Field(
        None, description="the SDR thresholds, in the dataset's unit (default 2, 2.5, 3, 4 mm, or 3, 6, 9 px "
        "without a spacing)")
    train_size: Size = Field((512, 512), description="[H, W] the network trains at")
    test_size: Size | None = Field(None, description="[H, W] the network predicts at (default: train_size)")
    root: str | None = Field(None, description="the dataset root, relative to this file (default: its folder)")
    source_folder: Annotated[str, AfterValidator(_one_folder)] | None = Field(
        None, description="the folder name the public source gives the set: a root holding that folder "
        "means the folder inside it")
    repository: Repository | None = Field(
        None, description="{url, commit}: the public git repository holding source_folder at its top, at the "
        "commit `xlm data fetch` checks out (needs source_folder)")
    order: Order | None = Field(None, description="{group: G, axis: x|y}: landmarks in consecutive groups of G "
                                "whose centres must increase strictly along axis; an image breaking it is "
                                "refused")
    group_by: Annotated[str, AfterValidator(_regex_with_group)] | None = Field(
        None, description="a regular expression whose first group names an id's patient: ids of one patient "
        "never straddle cross-validation folds")
    description: str | None = Field(None, description="free text")

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, name: str | None, info: ValidationInfo) -> str | None:
        taken = name is not None and name.strip() in BUILTIN_NAMES
        if taken and not (info.context or {}).get("builtin"):
            raise problem(f"{name.strip()!r} is reserved for the built-in descriptor; use "
                          f"load_dataset({name.strip()!r}, ROOT) or choose another name")
        return name

    @field_validator("spacing_mm")
    @classmethod
    def _pairs_exist(cls, spacing: Any, info: ValidationInfo) -> Any:
        n = _landmark_count(info)
        if isinstance(spacing, SpacingPair) and n is not None:
            named = {("named_pairs", k): p for k, p in (spacing.named_pairs or {}).items()}
            raise_problems("spacing_mm", [
                problem_at(loc, f"expected two different landmark numbers in 1..{n}, got {list(p)}", list(p))
                for loc, p in {("pair",): spacing.pair, **named}.items() if p[0] == p[1] or max(p) > n])
        return spacing

    @field_validator("order")
    @classmethod
    def _groups(cls, order: Order | None, info: ValidationInfo) -> Order | None:
        n = _landmark_count(info)
        if order is not None and n is not None and (n % order.group or n // order.group < 2):
            raise_problems("order", [problem_at(("group",), f"{order.group} does not cut the {n} landmarks "
                                                "into two or more equal groups", order.group)])
        return order

    @field_validator("repository")
    @classmethod
    def _needs_source_folder(cls, repository: Repository | None, info: ValidationInfo) -> Repository | None:
        if repository is not None and "source_folder" in info.data and info.data["source_folder"] is None:
            raise problem("needs source_folder: the repository's folder that holds the set")
        return repository

    def descriptor(self, where: str, folder: Path | None, builtin: bool, digest: str) -> Descriptor:
        """The :class:`Descriptor` this describes (``name`` filled in by :func:`parse_descriptor`)."""
        ann, spacing, split = self.annotations, self.spacing_mm, self.split or Split()
        images = self.images if isinstance(self.images, dict) else {DEFAULT_ALTERNATIVE: self.images}
        sources = ann.sources if isinstance(ann.sources, dict) else {p: p for p in _as_tuple(ann.sources)}
        if isinstance(self.landmarks, int):
            names = tuple(f"L{i}" for i in range(1, self.landmarks + 1))
        else:
            names = tuple(n.strip() for n in self.landmarks)
        if isinstance(spacing, SpacingPair):
            rule = SpacingRule(pair=_zero_based(spacing.pair), width_mm=spacing.width_mm,
                               named_pairs={k: _zero_based(p) for k, p in (spacing.named_pairs or {}).items()})
        else:
            rule = SpacingRule(mm_per_px=spacing)
        exclude = self.exclude if self.exclude is not None else []
        if folder is not None and self.root:
            folder = (folder / self.root).resolve()
        return Descriptor(
            name=self.name.strip(), where=where, folder=folder,
            images={k: _as_tuple(v) for k, v in images.items()}, format=ann.format, sources=dict(sources),
            units=ann.units or ("ratio" if ann.format in RATIO_FORMATS else "px"), index=ann.index,
            require_all=ann.require_all, landmark_names=names, names_given=not isinstance(self.landmarks, int),
            spacing=rule, split_train=None if isinstance(split.train, list) else split.train,
            split_train_ids=tuple(split.train) if isinstance(split.train, list) else None,
            split_test_ids=None if split.test is None else tuple(split.test), split_paper=split.paper,
            exclude=() if isinstance(exclude, dict) else tuple(exclude),
            named_exclusions={k: tuple(v) for k, v in exclude.items()} if isinstance(exclude, dict) else {},
            thresholds=None if self.thresholds is None else tuple(self.thresholds),
            train_size=self.train_size, test_size=self.test_size or self.train_size, builtin=builtin,
            source_folder=self.source_folder, digest=digest,
            order=None if self.order is None else (self.order.group, "xy".index(self.order.axis)),
            group_by=self.group_by,
            repository=None if (repo := self.repository) is None else (repo.url.strip(), repo.commit),
        )


def parse_descriptor(spec: Any, where: str, folder: Path | None, builtin: bool = False) -> Descriptor:
    """Validate a descriptor mapping (as read from YAML).

    Args:
        spec: the mapping.
        where: what error messages call it (the file's path, or "built-in descriptor 'head'").
        folder: the default dataset root (and name), or None.
        builtin: a packaged descriptor.

    Returns:
        The :class:`Descriptor`.

    Raises:
        SettingsError: (an XLMError) naming the file and every problem of it at once, each with
            its path (``annotations.sources[1]``): a missing, unknown or invalid key.
    """
    what = where if builtin else f"dataset descriptor {where}"
    if not isinstance(spec, dict):
        keys = ", ".join(DescriptorSpec.model_fields)
        raise SettingsError(what, [("", f"expected a mapping of keys ({keys}), got {shown(spec)}")])
    named = spec if spec.get("name") is not None else {**spec, "name": "dataset" if folder is None else folder.name}
    try:
        model = DescriptorSpec.model_validate(named, context={"builtin": builtin})
    except ValidationError as exc:
        raise SettingsError(what, problems_of(exc, DescriptorSpec)) from None
    # where the data are published is not what they are: none of these enters the digest
    normalised = {k: v for k, v in spec.items()
                  if k not in ("root", "source_folder", "repository", "description")}
    digest = hashlib.sha256(json.dumps(normalised, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return model.descriptor(where, folder, builtin, digest)
