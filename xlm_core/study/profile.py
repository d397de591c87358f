"""Study profiles (``studies/*.yaml``): loading and validation, before any training.

A profile is the single source of truth for every setting of a study. Its schema is the pydantic
model :class:`StudyProfile`: its sections, and :class:`RunLayer`, the run settings of
:class:`xlm_core.config.RunConfig`. Every key is described once, by its ``Field``; ``xlm study
schema`` prints the JSON Schema made from them (checked in as ``studies/profile.schema.json``,
named on each profile's first line for editors; ``xlm study schema --markdown``: the reference
page ``docs/profile.md``). A refused profile raises :class:`ProfileError`: every problem at
once, each with its path in the YAML (:mod:`xlm_core.validation`).

Run settings are merged in this order (later wins): ``run``, ``datasets.<d>``,
``<section>.run`` (and, for transfer stages after the first, ``transfer.finetune``, then its
entry for the stage's dataset). ``options`` dictionaries are merged key by key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from xlm_core import XLMError
from xlm_core.config import Number, RunSettings, Text, profile_settings
from xlm_core.registry import LOSS_NAMES as LOSSES
from xlm_core.validation import STRICT, SettingsError, by_type, problem, problem_at, problems_of, raise_problems, shown

DATASET_NAMES = ("head", "hand", "chest")  # the paper's three (phantoms, `chains: all`)
REAL_SET_NAMES = ("ceph", "spine")  # built-in descriptors of public real sets (data: real only)
INIT_TOKEN = "imagenet"  # the first element of a chain: the profile's encoder_weights
SCRATCH_TOKEN = "scratch"  # or this one: random weights (encoder_weights none), whatever the profile says
START_TOKENS = (INIT_TOKEN, SCRATCH_TOKEN)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
KEEP_CHECKPOINTS = ("all", "needed")
RUN_SETTING_KEYS = profile_settings()  # RunConfig's fields a profile sets (the others: the plan)


@dataclass(frozen=True)
class Profile:
    """A validated profile. ``settings``: :meth:`StudyProfile.settings`, its normalised form."""

    name: str
    path: Path | None  # the YAML file, None for an in-memory profile
    settings: dict

    @property
    def note(self) -> str:
        return self.settings["note"]

    @property
    def data(self) -> str:
        return self.settings["data"]

    @property
    def base_dir(self) -> Path:
        """Relative dataset roots are resolved against this folder (the YAML's)."""
        return self.path.parent if self.path is not None else Path.cwd()


# --------------------------------------------------------------------------- locating


def repo_root() -> Path | None:
    """The source checkout holding this package (a folder with studies/ or notebooks/), if any."""
    root = Path(__file__).resolve().parents[2]
    if (root / "studies").is_dir() or (root / "notebooks").is_dir():
        return root
    return None


def builtin_profile_names() -> list[str]:
    """Names accepted as ``xlm study run NAME`` (repo ``studies/`` first, then the package's)."""
    names: set[str] = set()
    root = repo_root()
    if root is not None and (root / "studies").is_dir():
        names.update(p.stem for p in (root / "studies").glob("*.yaml"))
    try:
        names.update(
            Path(str(p)).stem for p in resources.files("xlm_core").joinpath("studies").iterdir()
            if str(p).endswith(".yaml")
        )
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        pass
    return sorted(names)


def resolve_profile_path(spec: str | Path) -> Path:
    """A profile name (``demo``, ``paper``, ``ci``) or a path to a YAML file -> the YAML path.

    Names resolve to the repository's ``studies/<name>.yaml`` when this package runs from a
    checkout (the source of truth), else to the copy shipped in ``xlm_core/studies/``.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or path.is_file() or "/" in text:
        if not path.is_file():
            raise XLMError(f"study profile {text}: no such file")
        return path.resolve()
    root = repo_root()
    if root is not None and (root / "studies" / f"{text}.yaml").is_file():
        return (root / "studies" / f"{text}.yaml").resolve()
    shipped = Path(str(resources.files("xlm_core").joinpath("studies", f"{text}.yaml")))
    if shipped.is_file():
        return shipped
    raise XLMError(
        f"unknown study profile {text!r}; known: {', '.join(builtin_profile_names()) or 'none'}; "
        "or give a path to a .yaml file"
    )


def load_profile(spec: str | Path) -> Profile:
    """Read (``yaml.safe_load``) and validate a profile given by name or path."""
    path = resolve_profile_path(spec)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise XLMError(f"study profile {path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise XLMError(f"study profile {path}: cannot read: {exc.strerror}") from None
    settings = validate_profile(raw, source=str(path), default_name=path.stem)
    return Profile(name=settings["name"], path=path, settings=settings)


def profile_from_dict(raw: dict, source: str = "<profile>") -> Profile:
    """Validate an in-memory profile (tests, notebooks)."""
    settings = validate_profile(raw, source=source, default_name=None)
    return Profile(name=settings["name"], path=None, settings=settings)


# --------------------------------------------------------------------------- the schema
#
# The dataset names a profile may use (head, hand, chest, ceph, spine and its custom_datasets)
# reach the validators through the validation context.


class ProfileError(SettingsError):
    """A profile refused: ``problems``, every ``(path, problem)`` found, in the YAML's order
    (``transfer.finetune.head.epochs``, ``input should be greater than or equal to 1, got int 0``)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        super().__init__(f"study profile {source}", problems)
        self.source = source


def _datasets(info: ValidationInfo) -> tuple[str, ...]:
    """The dataset names this profile may use (the context's, else the built-in ones)."""
    return (info.context or {}).get("datasets", DATASET_NAMES + REAL_SET_NAMES)


def _one_of(value: Any, names: tuple[str, ...]) -> str | None:
    """None when ``value`` is one of ``names``, else the problem (``'knee' is not allowed; ...``)."""
    return None if value in names else f"{value!r} is not allowed; allowed: {', '.join(names)}"


def _known_dataset(value: str, info: ValidationInfo) -> str:
    """A dataset name: one of the profile's datasets (:func:`_datasets`)."""
    if (text := _one_of(value, _datasets(info))) is not None:
        raise problem(text)
    return value


def _combination_problem(arch: str, encoder: str) -> str | None:
    """None for a possible pair, else why not (unknown architecture / encoder / impossible pair)."""
    from xlm_core.models import check_combination  # imports torch: not when the module is

    try:
        check_combination(arch, encoder)
    except XLMError as exc:
        return str(exc)
    return None


def _null_is_empty(value: Any) -> Any:
    return {} if value is None else value


def _seeds_once(seeds: list[int] | None) -> list[int] | None:
    if seeds is not None and len(set(seeds)) != len(seeds):
        raise problem(f"a seed is listed twice: {seeds}")
    return seeds


class _Section(BaseModel):
    """A mapping of the profile: its keys are the fields (an unknown one is refused), values are
    not converted (1 is not true, "1e-4" is not a number)."""

    model_config = STRICT


def _not_taken(name: str) -> str:
    if name in DATASET_NAMES + REAL_SET_NAMES + START_TOKENS:
        raise problem(f"{name!r} is taken: not one of {DATASET_NAMES + REAL_SET_NAMES + START_TOKENS}")
    return name


Name = Annotated[str, Field(pattern=NAME_RE.pattern)]  # letters, digits, '-', '_', '.'
DatasetName = Annotated[str, AfterValidator(_known_dataset)]
Seed = Annotated[int, Field(ge=0)]
Seeds = Annotated[list[Seed], Field(min_length=1), AfterValidator(_seeds_once)]
Names = Annotated[list[str], Field(min_length=1)]
EncoderWeights = Annotated[
    Annotated[Text, Tag("~one")] | Annotated[dict[str, Text], Field(min_length=1), Tag("~per-encoder")],
    by_type(one=str, **{"per-encoder": dict}),
]


class RunLayer(RunSettings):
    """Run settings of a layer of the profile (``run``, ``datasets.<d>``, ``<section>.run``):
    any of RunConfig's run settings; ``encoder_weights`` also per encoder (``run: null``: none)."""

    encoder_weights: EncoderWeights = Field(
        "none", description="imagenet, none or a weights file PATH, or one of these per encoder: "
        "{vgg19: PATH, resnext101_32x8d: imagenet, ...}")

    @model_validator(mode="before")
    @classmethod
    def _null(cls, value: Any) -> Any:
        return _null_is_empty(value)


def _dataset_key(value: str, info: ValidationInfo) -> str:
    """A key of ``transfer.finetune`` beside its run settings: a dataset name."""
    if value not in _datasets(info):
        raise problem(f"unknown key; allowed: a run setting ({', '.join(RUN_SETTING_KEYS)}) or a dataset "
                      f"({', '.join(_datasets(info))})")
    return value


class Finetune(RunLayer):
    """``transfer.finetune``: run settings of every stage after the first, and per target
    dataset of such a stage (``{epochs: 6, head: {epochs: 8}}``: the dataset's entry wins)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[Annotated[str, AfterValidator(_dataset_key)], RunLayer] = Field(init=False)


class Synthetic(_Section):
    """The phantoms written for ``data: synthetic``."""

    n: Annotated[
        Annotated[int, Field(ge=2), Tag("~one")] | Annotated[dict[Literal[DATASET_NAMES], Annotated[int, Field(ge=2)]], Tag("~per-dataset")],
        by_type(one=int, **{"per-dataset": dict}),
    ] = Field(24, description="phantoms per anatomy: one number, or per anatomy ({head: 24, hand: 30, chest: 24})")
    seed: Seed = Field(0, description="seed of the phantoms")


class DatasetEntry(RunLayer):
    """``datasets.<d>``: where the data are, the loader's options, and run settings of the runs on ``d``."""

    root: str | None = Field(None, description="the dataset's folder (relative to the profile's folder); "
                             "null: --data-root DIR/<folder>")
    options: dict[str, Any] | None = Field(None, description="load_dataset options (annotator, wrist pair, ...) "
                                           "-> RunConfig.extra")


class Backbones(_Section):
    """Table 1: every architecture x encoder pair, k-fold cross-validation on one dataset."""

    dataset: DatasetName = Field("hand", description="the dataset of the comparison")
    folds: int = Field(5, ge=2, description="k of the k-fold cross-validation")
    archs: Names = Field(["unet", "unetplusplus", "deeplabv3"], description="architectures (every one with every encoder)")
    encoders: Names = Field(["efficientnet-b7", "resnext101_32x8d", "vgg19"], description="encoders")
    pairs: Annotated[list[Annotated[list[str], Field(min_length=2, max_length=2)]], Field(min_length=1)] | None = Field(
        None, description="an explicit [[arch, encoder], ...] instead of archs x encoders")
    seeds: Seeds | None = Field(None, description="default: the profile's seeds")
    run: RunLayer = Field(default_factory=RunLayer, description="run settings of these runs only")

    @model_validator(mode="after")
    def _combinations(self) -> Backbones:
        errors = []
        if self.pairs is not None:
            for i, (arch, enc) in enumerate(self.pairs):
                if (why := _combination_problem(arch, enc)) is not None:
                    errors.append(problem_at(("pairs", i), why, [arch, enc]))
            if {"archs", "encoders"} & self.model_fields_set:
                errors.append(problem_at(("pairs",), "give either pairs or archs/encoders, not both"))
        else:
            for i, arch in enumerate(self.archs):
                if (why := _combination_problem(arch, self.encoders[0])) is not None:
                    errors.append(problem_at(("archs", i), why, arch))
            for i, enc in enumerate(self.encoders):
                if (why := _combination_problem(self.archs[0], enc)) is not None:
                    errors.append(problem_at(("encoders", i), why, enc))
        if not errors and len({tuple(p) for p in self.all_pairs()}) != len(self.all_pairs()):
            errors.append(problem_at(("pairs",), "a pair is listed twice"))
        raise_problems("backbones", errors)
        return self

    def all_pairs(self) -> list[list[str]]:
        """The pairs trained: ``pairs``, or every arch x encoder but the impossible ones
        (DeepLabV3 + VGG: no dilated mode), left out as in the paper."""
        if self.pairs is not None:
            return [list(p) for p in self.pairs]
        return [[a, e] for a in self.archs for e in self.encoders if _combination_problem(a, e) is None]


class _Model(_Section):
    arch: str = Field("unetplusplus", description="the architecture of every run of this section")
    encoder: str = Field("vgg19", description="the encoder of every run of this section")

    def _model_errors(self) -> list[InitErrorDetails]:
        why = _combination_problem(self.arch, self.encoder)
        return [] if why is None else [problem_at(("arch/encoder",), why, [self.arch, self.encoder])]


Chain = Annotated[list[str], Field(min_length=1)]


class Transfer(_Model):
    """Table 2: ImageNet -> [A -> [B ->]] target, one run per stage."""

    targets: Names = Field(list(DATASET_NAMES), description="the target datasets")
    chains: Annotated[
        Annotated[Literal["all"], Tag("~all")] | Annotated[list[Chain], Field(min_length=1), Tag("~list")],
        by_type(all=str, list=list),
    ] = Field("all", description="all (the paper's five per target) or [[imagenet, A, B, T], ...], each "
              "starting with imagenet or scratch and ending with its target")
    matched_control: bool = Field(True, description="per target, [imagenet, T, T, T]: as many stages as its "
                                  "longest chain, on its own data only")
    scratch_control: bool = Field(False, description="per target, [scratch, T] and [scratch, T, T, T]: the same "
                                  "stages from random weights (what ImageNet buys)")
    compute_control: bool = Field(False, description="per chain through other datasets ([imagenet, A, T]): "
                                  "T alone from the same start for as many optimiser steps as the whole chain, in "
                                  "one schedule (what the compute buys); needs steps set for every stage's dataset")
    folds: int | None = Field(None, ge=2, description="target cross-validation: every usable image of a target is "
                              "a test image once over this many folds of all its images (a patient's images in "
                              "one fold); the stages on a target run per fold, the other datasets' stages once "
                              "per seed on their own split. null: the target's fixed test split")
    seeds: Seeds | None = Field(None, description="default: the profile's seeds")
    run: RunLayer = Field(default_factory=RunLayer, description="run settings of these runs only")
    finetune: Finetune = Field(default_factory=Finetune, description="run settings of the stages after the first "
                               "(they start from a trained checkpoint), and per target dataset: {epochs: 6, head: {epochs: 8}}")

    @model_validator(mode="after")
    def _chains(self, info: ValidationInfo) -> Transfer:
        names = _datasets(info)
        errors = self._model_errors()
        for i, target in enumerate(self.targets):
            if (why := _one_of(target, names)) is not None:
                errors.append(problem_at(("targets", i), why, target))
        if self.chains == "all":
            own = [t for t in self.targets if t not in DATASET_NAMES]
            if own:
                errors.append(problem_at(("chains",), f"'all' is defined for {DATASET_NAMES}; list the chains "
                                  f"of {own[0]!r} explicitly, e.g. [[imagenet, hand, {own[0]}]]"))
        else:
            for i, chain in enumerate(self.chains):
                errors += _chain_errors(chain, ("chains", i), names, self.targets)
        if not errors and len({tuple(c) for c in self.all_chains()}) != len(self.all_chains()):
            errors.append(problem_at(("chains",), "a chain is listed twice"))
        raise_problems("transfer", errors)
        return self

    def all_chains(self) -> list[list[str]]:
        """The chains trained: the listed ones (or the paper's), then the controls asked for."""
        chains = [c for t in self.targets for c in all_chains(t)] if self.chains == "all" else \
            [list(c) for c in self.chains]
        if self.matched_control:
            chains = chains + [c for c in matched_controls(chains) if c not in chains]
        if self.scratch_control:
            chains = chains + [c for c in scratch_controls(chains) if c not in chains]
        return chains


def _chain_errors(chain: list[str], loc: tuple, names: tuple[str, ...], targets: list[str]) -> list:
    bad = [problem_at((*loc, j), p, t) for j, t in enumerate(chain) if (p := _one_of(t, START_TOKENS + names))]
    if bad:
        return bad
    if chain[0] not in START_TOKENS or any(t in START_TOKENS for t in chain[1:]):
        return [problem_at(loc, f"a chain starts with {INIT_TOKEN!r} or {SCRATCH_TOKEN!r} (and names a start once): "
                    f"{chain}", chain)]
    if len(chain) < 2:
        return [problem_at(loc, f"a chain ends with its target dataset: {chain}", chain)]
    seen = chain[1:]
    twice = sorted({d for d in seen if seen.count(d) > 1})
    if twice and not is_control_chain(chain):
        return [problem_at(loc, f"names the dataset {twice[0]!r} twice (only a matched control repeats its target "
                    f"alone, e.g. [imagenet, head, head, head]): {chain}", chain)]
    if chain[-1] not in targets:
        return [problem_at(loc, f"ends with {chain[-1]!r}, not one of transfer.targets {targets}", chain)]
    return []


LearningRates = Annotated[list[Annotated[float, Field(gt=0), *Number.__metadata__]], Field(min_length=1)]


class Ablation(_Model):
    """Losses x learning rates on one dataset, one seed (kind "ablation" runs; full training
    split, scored on test)."""

    dataset: DatasetName = Field("hand", description="the dataset of the ablation")
    losses: Annotated[list[Literal[LOSSES]], Field(min_length=1)] = Field(list(LOSSES), description="the losses")
    lrs: Annotated[
        Annotated[LearningRates, Tag("~grid")] | Annotated[dict[str, LearningRates], Tag("~per-loss")],
        by_type(grid=list, **{"per-loss": dict}),
    ] = Field([1.0e-3, 1.0e-4], description="learning rates: every loss with every one, or per loss: "
              "{mse: [1.0e-4], ...} (write 1.0e-4, not 1e-4: YAML reads 1e-4 as text)")
    seed: Seed = Field(0, description="the seed of every ablation run")
    run: RunLayer = Field(default_factory=RunLayer, description="run settings of these runs (not loss, lr)")

    @model_validator(mode="after")
    def _grid(self) -> Ablation:
        errors = self._model_errors()
        if len(set(self.losses)) != len(self.losses):
            errors.append(problem_at(("losses",), f"a loss is listed twice: {self.losses}", self.losses))
        if isinstance(self.lrs, dict):
            errors += [problem_at(("lrs", k), f"unknown key; allowed: {', '.join(self.losses)}")
                       for k in self.lrs if k not in self.losses]
            errors += [problem_at(("lrs", loss), "missing: give the learning rates of every loss")
                       for loss in self.losses if loss not in self.lrs]
            lists = {("lrs", k): v for k, v in self.lrs.items()}
        else:
            lists = {("lrs",): self.lrs}
        errors += [problem_at(loc, f"a learning rate is listed twice: {v}", v) for loc, v in lists.items()
                   if len(set(v)) != len(v)]
        errors += [problem_at(("run", key), "set by ablation.losses / ablation.lrs")
                   for key in ("loss", "lr") if key in self.run.model_fields_set]
        raise_problems("ablation", errors)
        return self

    def lrs_per_loss(self) -> dict[str, list[float]]:
        if isinstance(self.lrs, dict):
            return {loss: list(self.lrs[loss]) for loss in self.losses}
        return {loss: list(self.lrs) for loss in self.losses}


class Execution(_Section):
    """How runs are executed (not part of any result)."""

    workers: Annotated[
        Annotated[Literal["auto"], Tag("~auto")] | Annotated[int, Field(ge=1), Tag("~count")],
        by_type(count=int, auto=str),
    ] = Field(1, description="parallel runs when --workers is not given (auto: from the cores and the memory)")
    threads: int | None = Field(None, ge=1, description="torch/OpenMP threads per run (null: torch's default)")
    keep_checkpoints: Literal[KEEP_CHECKPOINTS] = Field(
        "all", description="all, or needed: delete a finished run's checkpoint.pt once no later run starts "
        "from it and no book page loads it")


class StudyProfile(_Section):
    """A study profile (studies/*.yaml): every setting of a study, the single source of truth."""

    model_config = ConfigDict(title="xlm study profile")

    name: Name = Field(None, description="the study name (results/<name>/; letters, digits, - _ .); default: "
                       "the file's name")  # a profile without a file has one: validate_profile
    note: str | None = Field(None, description="a one-line label shown on every page this study feeds")
    data: Literal["synthetic", "real"] = Field("real", description="synthetic: phantoms; real: x-rays under "
                                               "--data-root or datasets.<d>.root")
    synthetic: Synthetic = Field(default_factory=Synthetic, description="the phantoms written for data: synthetic")
    custom_datasets: dict[Annotated[Name, AfterValidator(_not_taken)], Annotated[str, Field(pattern=r"\.ya?ml$")]] = Field(
        default_factory=dict, description="{name: path of a dataset.yaml}: your own datasets, usable as backbone, "
        "ablation or transfer datasets (relative paths: to the profile's folder)")
    datasets: dict[DatasetName, DatasetEntry] = Field(
        default_factory=dict, description="per-dataset settings (head, hand, chest, ceph, spine or a custom "
        "dataset): root, options and run settings")
    run: RunLayer = Field(default_factory=RunLayer, description="run settings of every run")
    seeds: Seeds = Field([0], description="a list of integer seeds")
    backbones: Backbones | None = Field(None, description="the backbone comparison (Table 1), or null")
    transfer: Transfer | None = Field(None, description="the transfer chains (Table 2), or null")
    ablation: Ablation | None = Field(None, description="losses x learning rates on one dataset (the method "
                                      "chapter), or null")
    notebooks: Annotated[list[Name], Field(min_length=1)] | None = Field(
        None, description="the aggregation notebooks (notebooks/<name>.py) run after the runs, in order (default: "
        "the paper's chapters: datasets, pipeline, ablation, backbones, transfer, sota, beyond)")
    execution: Execution = Field(default_factory=Execution, description="{workers, threads, keep_checkpoints}: "
                                 "parallel runs (or auto), torch threads per run, which finished checkpoints stay")

    @field_validator("synthetic", "custom_datasets", "datasets", "execution", mode="before")
    @classmethod
    def _null(cls, value: Any) -> Any:
        return _null_is_empty(value)

    @model_validator(mode="after")
    def _something_to_run(self) -> StudyProfile:
        errors = []
        if self.backbones is None and self.transfer is None and self.ablation is None:
            errors.append(problem_at(("backbones",), "backbones, transfer and ablation are all empty: nothing to run"))
        if self.data == "synthetic":
            real = sorted(self.used_datasets() & set(REAL_SET_NAMES))
            if real:
                errors.append(problem_at(("data",), f"synthetic: there are phantoms of {DATASET_NAMES} only, and the "
                                  f"profile trains on {real} (real sets: use data: real and --data-root DIR)"))
        raise_problems("profile", errors)
        return self

    def used_datasets(self) -> set[str]:
        """The datasets some run trains on."""
        used = {s.dataset for s in (self.backbones, self.ablation) if s is not None}
        for chain in self.transfer.all_chains() if self.transfer is not None else []:
            used.update(chain[1:])
        return used

    def settings(self) -> dict:
        """The normalised form :class:`Profile` holds: JSON-ready, every default filled in (a run
        settings layer: the settings given), every dataset named, pairs, chains and lrs expanded."""
        out = self.model_dump(mode="json", exclude={"backbones": {"archs", "encoders"}})
        out["note"] = f"study profile {self.name}" if self.note is None else self.note
        given = out["datasets"]
        out["datasets"] = {d: {**given.get(d, {}), "options": dict(given.get(d, {}).get("options") or {})}
                           for d in _all_names(self.custom_datasets)}
        if self.backbones is not None:
            out["backbones"]["pairs"] = self.backbones.all_pairs()
        if self.transfer is not None:
            out["transfer"]["chains"] = self.transfer.all_chains()
        if self.ablation is not None:  # lrs: {loss: [lr, ...]}; points: every [loss, lr]
            lrs = self.ablation.lrs_per_loss()
            out["ablation"].update(lrs=lrs, points=[[loss, lr] for loss, each in lrs.items() for lr in each])
        return out


def _all_names(custom: dict) -> tuple[str, ...]:
    """Every dataset name of a profile: the built-in ones, then its custom_datasets."""
    taken = DATASET_NAMES + REAL_SET_NAMES + START_TOKENS
    return DATASET_NAMES + REAL_SET_NAMES + tuple(
        k for k in custom if isinstance(k, str) and NAME_RE.match(k) and k not in taken)


def validate_profile(raw: Any, source: str, default_name: str | None) -> dict:
    """Check every key and value of a profile; return its normalised form.

    Raises :class:`ProfileError` (an XLMError) naming ``source`` and every problem at once,
    each with its path in the YAML and the allowed values: an unknown key, a wrong type, an
    unknown dataset / architecture / encoder, an impossible arch-encoder pair, a transfer
    chain naming a dataset twice, ...
    """
    if not isinstance(raw, dict):
        raise ProfileError(source, [("", f"expected a mapping at the top, got {shown(raw)}")])
    if "name" not in raw and default_name is None:
        raise ProfileError(source, [("name", "missing (the study's folder name under results/)")])
    raw = {"name": default_name, **raw}
    custom = raw.get("custom_datasets")
    context = {"datasets": _all_names(custom if isinstance(custom, dict) else {})}
    try:
        model = StudyProfile.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ProfileError(source, problems_of(exc, StudyProfile)) from None
    return model.settings()


def is_control_chain(chain: list[str] | tuple[str, ...]) -> bool:
    """A matched control: ``[imagenet|scratch, T, T, ...]``, two or more stages all on the target."""
    stages = list(chain[1:])
    return len(stages) >= 2 and len(set(stages)) == 1


def matched_controls(chains: list[list[str]]) -> list[list[str]]:
    """For every target whose longest chain has k >= 2 stages, ``[imagenet] + [target] * k``.

    The control trains on the target alone for as many stages as that chain, each stage with
    the settings a chain's stage on the target gets (``transfer.finetune`` after the first), so
    it spends about as many optimiser steps: it separates "other x-rays first" from "longer
    training with warm restarts". Its first stage is the single-stage run itself (shared).
    """
    return [[INIT_TOKEN, *[t] * k] for t, k in _longest(chains).items() if k >= 2]


def scratch_controls(chains: list[list[str]]) -> list[list[str]]:
    """For every target: ``[scratch, target]`` and, where its longest chain has k >= 2 stages,
    ``[scratch] + [target] * k``: the single stage and the matched control again, from random
    weights with the same settings and steps. Against them the ImageNet rows say what ImageNet
    buys, at one stage and at the length of the longest chain.
    """
    out = []
    for target, k in _longest(chains).items():
        out.append([SCRATCH_TOKEN, target])
        if k >= 2:
            out.append([SCRATCH_TOKEN, *[target] * k])
    return out


def _longest(chains: list[list[str]]) -> dict[str, int]:
    """Per target, the stages of its longest chain that is not a control (ImageNet-started)."""
    longest: dict[str, int] = {}
    for chain in chains:
        if chain[0] == INIT_TOKEN and not is_control_chain(chain):
            longest[chain[-1]] = max(longest.get(chain[-1], 0), len(chain) - 1)
    return longest


def all_chains(target: str) -> list[list[str]]:
    """The paper's five chains ending at ``target``: I, I-A, I-B, I-A-B, I-B-A (A, B the others)."""
    a, b = [d for d in DATASET_NAMES if d != target]
    return [
        [INIT_TOKEN, target],
        [INIT_TOKEN, a, target],
        [INIT_TOKEN, b, target],
        [INIT_TOKEN, a, b, target],
        [INIT_TOKEN, b, a, target],
    ]
