"""One run of the study, fully described: the contract between the runner, the run
notebook and the training engine.

A :class:`RunConfig` is what ``xlm train`` parses, what the study runner expands a
profile into, and what papermill injects into ``notebooks/train_evaluate.py`` (one
parameter, ``config``: :meth:`RunConfig.to_dict`). Its normalised form is hashed into the
run id.

RunConfig is a pydantic dataclass: every field is described once, by its type and its
``pydantic.Field`` (default, range, help text as ``description``) and a :class:`Setting`
(the hint added to error messages, the ``xlm train`` flag, where a study profile sets it;
:func:`setting`). Construction checks and converts every field, so code downstream never
casts; the study profile's run settings (:class:`RunSettings`, :mod:`xlm_core.study.profile`),
the flags of ``xlm train`` (:mod:`xlm_core.cli.train`), the run notebook and the profile's
JSON Schema (``xlm study schema``) derive from the same fields. An encoder name
is checked against smp (torch) where a model is built: ``xlm_core.models.check_combination``,
called by the profile checker and the training engine.

``metrics.json`` written by a run (the runner and the aggregation notebooks read it)::

    {
      "config": {...RunConfig fields...},
      "dataset": "hand", "data_source": "synthetic" | "real",
      "unit": "mm" | "px", "scale": "<Scale.describe()>", "wrist_pair": [2, 6] | null,
      "thresholds": [2.0, 4.0, 10.0],
      "mre": <test MRE, clean protocol>, "mean_shape_mre": <same images, same protocol>,
      "decoder": "softargmax-r5-sym" | "newton",   # xlm_core.registry.decoder_name
      "trace_decoder": <decoder of history.csv's trace> | null,
      "test":    {"clean": SCORE, "zhu": SCORE},      # the dataset's test split
      "heldout": {"clean": SCORE, "zhu": SCORE} | null,  # the CV fold's held-out part
      "transfer": TRANSFER_REPORT | null,
      "epochs_run": int, "best_epoch": int, "train_seconds": float,
    }
    SCORE = {"n_images", "n_landmarks", "mre", "mre_std", "unit", "protocol",
             "sdr": {"<threshold>": percent}, "per_landmark_mre": [...],
             "mean_shape_mre": float}
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import ArgsKwargs, InitErrorDetails, PydanticCustomError, PydanticUndefined

from xlm_core import XLMError
from xlm_core.registry import ARCHITECTURES, LOSS_NAMES, LR_SCHEDULES, PRECISIONS, normalise_arch

DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$", re.IGNORECASE)


class SettingError(XLMError):
    """A run setting refused: ``name`` (the field), ``problem`` (``expected ..., got ...``);
    ``problems``: every ``(name, problem)`` refused at once (the first is ``name``, ``problem``)."""

    def __init__(self, name: str, problem: str, problems: list[tuple[str, str]] | None = None):
        self.problems = problems or [(name, problem)]
        super().__init__("\n".join(f"run setting {n}: {p}" for n, p in self.problems))
        self.name, self.problem = name, problem


@dataclass(frozen=True)
class Setting:
    """What a RunConfig field says beyond its type and ``Field``: ``hint``, added to the
    description in error messages; ``flag``, its ``xlm train`` flag (``""``: ``--`` and the
    name with dashes; None: no flag); ``choices``: the flag's choices (True: the field's
    Literal names); ``profile``: True for a run setting of study profiles (``run:``,
    ``datasets.<d>``, ``<section>.run``), otherwise where a profile sets it instead (text);
    ``what``: the description of the accepted values when the generated one would not say enough."""

    hint: str = ""
    flag: str | None = ""
    choices: bool | tuple[str, ...] = False
    profile: str | bool = True
    what: str = ""


def setting(default: Any = PydanticUndefined, *, help: str, hint: str = "", flag: str | None = "",
            choices: bool | tuple[str, ...] = False, profile: str | bool = True, what: str = "",
            **constraints: Any) -> Any:
    """A RunConfig field: ``default`` (undefined: required), ``help`` (its ``xlm train`` help
    and its JSON Schema description), pydantic ``constraints`` (``ge``, ``gt``, ``lt``,
    ``pattern``, ``default_factory``) and its :class:`Setting`."""
    info = Field(default, description=help, **constraints)
    info.metadata.append(Setting(hint=hint, flag=flag, choices=choices, profile=profile, what=what))
    return info


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _device(value: str) -> str:
    if not DEVICE_RE.match(value):
        raise PydanticCustomError("device", "not a device")
    return value


Size = Annotated[tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]], BeforeValidator(_as_tuple)]
"""(H, W) in pixels; a list of two in YAML and JSON."""
Text = Annotated[str, Field(pattern=r"^\S")]  # non-empty (no leading blank)
_PLAN = "set by the study plan"
_STRICT = ConfigDict(strict=True)


@pydantic_dataclass(config=_STRICT)
class RunConfig:
    dataset: Text = setting(help="head, hand, chest, ceph, spine (or a dataset.yaml path)", what="non-empty text",
                            profile=f"{_PLAN}: backbones.dataset, transfer.targets/chains, ablation.dataset")
    root: str = setting(profile=f"{_PLAN}: datasets.<d>.root or --data-root",
                        help="dataset root folder (head, hand, chest; ceph, spine: or a folder holding "
                        "hamedan_university_dataset/, boostnet_labeldata/; a dataset.yaml names its own)")
    out: str = setting(help="run directory", profile=f"{_PLAN}: results/<study>/runs/<id>")
    arch: str = setting(
        "unetplusplus", what="one of " + ", ".join(ARCHITECTURES) + " (or an alias)",
        help="unet, unetplusplus or deeplabv3", profile=f"{_PLAN}: backbones.archs/pairs, transfer.arch, ablation.arch")
    encoder: Text = setting("vgg19", help="encoder name", what="non-empty text",
                            profile=f"{_PLAN}: backbones.encoders/pairs, transfer.encoder, ablation.encoder")
    encoder_weights: Text = setting("none", what="'imagenet', 'none' or a path to a weights file",
                                    help="imagenet, none or a weights file PATH")
    init: Text | None = setting(None, help="checkpoint of an earlier run to start from (transfer)",
                                what="non-empty text", profile=f"{_PLAN}: the previous stage of a transfer chain")
    epochs: int = setting(200, ge=1, help="at most this many epochs (early stopping may end sooner)")
    patience: int = setting(20, ge=0, help="early stopping: epochs without improvement")
    train_size: Size = setting((512, 512), help="training grid, height and width in pixels")  # (H, W)
    test_size: Size | None = setting(None, hint="null: the paper's size",
                                     help="evaluation size (default: the dataset's paper test size)")
    batch_size: int = setting(2, ge=1, help="images per optimiser step")
    lr: float = setting(1e-4, gt=0, allow_inf_nan=False, help="Adam learning rate",
                        hint="write 1.0e-4, not 1e-4: YAML reads 1e-4 as text")
    lr_schedule: Literal[LR_SCHEDULES] = setting(
        "plateau", choices=True, help="plateau: x0.1 after patience//2 epochs without progress (the paper); "
        "cosine: linear warm-up over the first epoch, then cosine decay to 0")
    loss: Literal[LOSS_NAMES] = setting("mse", help="mse, bce, spatial_ce or awing")
    sigma: float = setting(2.0, gt=0, allow_inf_nan=False, help="Gaussian sigma in heatmap pixels",
                           hint="Gaussian sigma in heatmap-grid pixels")
    folds: int | None = setting(None, ge=2, help="k-fold cross-validation over the training split",
                                profile=f"{_PLAN}: backbones.folds")
    fold: int | None = setting(None, ge=0, help="held-out fold, 0-based (with --folds)",
                               profile=f"{_PLAN}: one run per fold of backbones.folds")
    folds_over: Literal["train", "all"] = setting(
        "train", choices=True, profile=f"{_PLAN}: transfer.folds",
        help="what --folds cuts: train (the training split; the test split scored too) or all (every usable "
             "image, a patient's images in one fold (the dataset's group_by); the held-out fold is the test part)")
    steps: int | None = setting(None, ge=1, hint="null: epochs decide",
                                help="train exactly this many optimiser steps (epochs: as many as they take, the "
                                     "last one cut short; the cosine schedule spans them); default: epochs decide")
    seed: int = setting(0, ge=0, help="seed of initialisation, augmentation and shuffling",
                        profile=f"{_PLAN}: seeds, <section>.seeds, ablation.seed")
    device: Annotated[str, AfterValidator(_device)] = setting("auto", what="'auto', 'cpu', 'cuda' or 'cuda:K'", choices=("auto", "cpu", "cuda"),
                          help="where to train (auto: CUDA when present)")
    precision: Literal[PRECISIONS] = setting(  # not in the run id
        "auto", choices=True, hint="auto: bf16 on CUDA, and on CPUs with AMX for VGG encoders",
        help="forward-pass precision (default auto: bf16 autocast on CUDA, and on CPUs "
             "with AMX-BF16 for VGG encoders; fp32 elsewhere)")
    val_fraction: float = setting(0.1, ge=0, lt=1, allow_inf_nan=False, hint="0: no validation images",
                                  help="early-stopping share carved out of the training part (default 0.1; 0: "
                                       "none, every training image is fitted and early stopping watches their loss)")
    train_limit: int | None = setting(None, ge=1, help="use the first N training images")
    num_workers: int = setting(0, ge=0, help="data loader worker processes")
    checkpoint_every_s: float = setting(0.0, ge=0, allow_inf_nan=False, hint="seconds; 0: every epoch",
                                        flag="--checkpoint-every",
                                        help="write the resume state and the best weights at most every S seconds "
                                             "(default: every epoch)")
    trace_mre: bool = setting(False, help="score the validation and test images after every epoch (history.csv); "
                                          "recorded only, the checkpoint is still chosen by the validation loss")
    precise_bn: bool = setting(False, hint="re-estimate BatchNorm statistics before scoring",
                               help="re-estimate BatchNorm statistics on the fitted images for the chosen weights "
                                    "before scoring (and in the MRE trace)")
    extra: dict[str, Any] = setting(
        default_factory=dict, flag=None, profile=f"{_PLAN}: datasets.<d>.options",
        help="dataset options (annotator, wrist pair, ...): xlm train --option KEY=VALUE")

    @model_validator(mode="wrap")
    @classmethod
    def _check(cls, values: Any, handler: Any) -> Any:
        """Every refused field at once as a SettingError (``expected ..., got ...``), then the
        fields checked together (architecture, folds with fold)."""
        given = _given(values)
        try:
            cfg = handler(values)
        except ValidationError as exc:
            problems = setting_problems(exc, given)
            raise SettingError(*problems[0], problems=problems) from None
        if normalise_arch(cfg.arch) not in ARCHITECTURES:
            raise SettingError("arch", f"unknown architecture {cfg.arch!r}; allowed: {', '.join(ARCHITECTURES)}")
        if (cfg.folds is None) != (cfg.fold is None):
            raise SettingError("fold", f"cross-validation needs both folds and fold, got folds={cfg.folds}, "
                                       f"fold={cfg.fold}")
        if cfg.folds is not None and cfg.fold >= cfg.folds:
            raise SettingError("fold", f"expected an integer in [0, {cfg.folds}) (folds={cfg.folds}), got {cfg.fold}")
        return cfg

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict:
        """Every field, JSON-ready (sizes as lists); :meth:`from_dict` reads it back."""
        d = asdict(self)
        for key in ("train_size", "test_size"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """A RunConfig of ``d`` (:meth:`to_dict`'s form, or any subset of the fields with the
        required ones); XLMError naming an unknown key or a refused value."""
        unknown = sorted(set(d) - set(field_names()))
        if unknown:
            raise XLMError(f"unknown run parameter(s): {unknown}; allowed: {sorted(field_names())}")
        missing = [name for name in field_names() if name not in d and _field(name).is_required()]
        if missing:
            raise XLMError(f"missing run parameter(s): {missing}")
        return cls(**d)

    def normalised(self) -> dict:
        """Fields that define the result (not where it is written), JSON-stable."""
        d = self.to_dict()
        d.pop("out")
        d.pop("device")
        d.pop("precision")  # like the device: where and how fast, recorded in metrics.json
        d.pop("num_workers")
        d.pop("checkpoint_every_s")  # where the resume state is written, not what is trained
        d.pop("trace_mre")  # a record of the training, which it leaves unchanged (tested)
        # settings added later enter the id only when they differ from the behaviour before
        # them, so the runs of earlier studies keep their ids
        for key, before in (("lr_schedule", "plateau"), ("precise_bn", False), ("folds_over", "train"),
                            ("steps", None)):
            if d[key] == before:
                d.pop(key)
        return d

    def run_hash(self, data_fingerprint: str = "") -> str:
        blob = json.dumps(self.normalised(), sort_keys=True) + "|" + data_fingerprint
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- the fields, described


def _given(values: Any) -> dict:
    """The input of a RunConfig (ArgsKwargs, positional arguments in field order) as a mapping."""
    if isinstance(values, ArgsKwargs):
        return {**dict(zip(field_names(), values.args or ())), **(values.kwargs or {})}
    return dict(values) if isinstance(values, dict) else {}


def _field(name: str):
    return RunConfig.__pydantic_fields__[name]


def _setting_of(name: str) -> Setting:
    return next(m for m in _field(name).metadata if isinstance(m, Setting))


def _base(annotation: Any) -> tuple[Any, bool]:
    """The type a field holds without None and Annotated, and whether None is allowed."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    nullable = type(None) in args
    base = next((a for a in args if a is not type(None)), annotation) if args else annotation
    while typing.get_origin(base) is Annotated:
        base = typing.get_args(base)[0]
    return base, nullable


def field_kind(name: str) -> str:
    """``int``, ``float``, ``text``, ``bool``, ``size`` ([H, W]), ``dict`` or ``name`` (a Literal)."""
    base, _ = _base(_field(name).annotation)
    if typing.get_origin(base) is Literal:
        return "name"
    if base is tuple or typing.get_origin(base) is tuple:
        return "size"
    return {int: "int", float: "float", bool: "bool", str: "text", dict: "dict"}.get(
        typing.get_origin(base) or base, "text")


def field_choices(name: str) -> tuple[str, ...]:
    """The names a Literal field accepts (``()`` for the others)."""
    base, _ = _base(_field(name).annotation)
    return tuple(typing.get_args(base)) if typing.get_origin(base) is Literal else ()


def _num(v: float | None) -> str:
    return str(int(v)) if v is not None and float(v).is_integer() else str(v)


def describe(name: str) -> str:
    """What field ``name`` accepts, in words (``an integer >= 1``, ``one of mse, bce, ...``)."""
    info, meta, kind = _field(name), _setting_of(name), field_kind(name)
    _, nullable = _base(info.annotation)
    if meta.what:
        text = meta.what
    elif kind in ("int", "float"):
        noun = "an integer" if kind == "int" else "a number"
        bounds = {type(m).__name__: getattr(m, type(m).__name__.lower()) for m in info.metadata
                  if type(m).__name__ in ("Ge", "Gt", "Lt")}
        if "Lt" in bounds:
            text = f"{noun} in [{_num(bounds.get('Ge'))}, {_num(bounds['Lt'])})"
        elif "Ge" in bounds:
            text = f"{noun} >= {_num(bounds['Ge'])}"
        elif "Gt" in bounds:
            text = f"{noun} > {_num(bounds['Gt'])}"
        else:
            text = noun
    else:
        text = {"size": "[H, W], two positive integers", "bool": "true or false", "dict": "a mapping",
                "text": "text", "name": "one of " + ", ".join(field_choices(name))}[kind]
    return text + (", or null" if nullable else "")


def _kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def setting_problem(name: str, value: Any) -> str:
    """The message of a refused value of field ``name``: ``expected <what> (<hint>), got <kind> <value>``."""
    hint = _setting_of(name).hint
    return f"expected {describe(name)}{f' ({hint})' if hint else ''}, got {_kind_of(value)} {value!r}"


def setting_problems(exc: ValidationError, given: dict) -> list[tuple[str, str]]:
    """``(field, problem)`` of every field a ValidationError of RunConfig fields refuses, in
    field order; a value refused by a field's own check keeps that check's message."""
    out: dict[str, str] = {}
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        if name in out or name not in RunConfig.__pydantic_fields__:
            continue
        if err["type"] == "missing" and len(err["loc"]) == 1:
            out[name] = "missing"
        else:
            custom = err["type"] == "setting"
            out[name] = err["msg"] if custom else setting_problem(name, given.get(name, err["input"]))
    return sorted(out.items(), key=lambda item: field_names().index(item[0]))


def field_names() -> tuple[str, ...]:
    """RunConfig's fields, in order."""
    return tuple(RunConfig.__pydantic_fields__)


def field_meta(name: str) -> dict:
    """Field ``name`` described: ``help``, ``hint``, ``flag``, ``choices`` (the flag's, or
    None), ``profile``, ``kind`` (:func:`field_kind`), ``default`` (None where required or a factory)."""
    info, meta = _field(name), _setting_of(name)
    choices = field_choices(name) if meta.choices is True else (meta.choices or None)
    default = None if info.default is PydanticUndefined else info.default
    return {"help": info.description or "", "hint": meta.hint, "flag": meta.flag,
            "choices": list(choices) if choices else None, "profile": meta.profile,
            "kind": field_kind(name), "default": default}


def profile_settings() -> tuple[str, ...]:
    """Fields a study profile sets as run settings (the others are set by the plan)."""
    return tuple(name for name in field_names() if _setting_of(name).profile is True)


# ---------------------------------------------------------------------- a profile's run settings


def unknown_key_error(key: Any, allowed: tuple[str, ...] | list[str], value: Any) -> InitErrorDetails:
    """The error of a key a mapping does not allow, listing those it does."""
    return InitErrorDetails(type=PydanticCustomError("unknown_key", "unknown key; allowed: {allowed}",
                                                     {"allowed": ", ".join(allowed)}), loc=(key,), input=value)


def as_details(errors: list[dict]) -> list[InitErrorDetails]:
    """Errors of a ValidationError (``exc.errors()``) again as details to raise, messages kept."""
    return [InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"], _plain(e.get("ctx"))),
                             loc=e["loc"], input=e.get("input")) for e in errors]


def _plain(ctx: dict | None) -> dict | None:
    """An error's context, its values as pydantic can carry them again (an exception as text)."""
    return None if not ctx else {k: v if isinstance(v, (str, int, float)) else str(v) for k, v in ctx.items()}


def validate_known_keys(value: Any, handler: Any, allowed: tuple[str, ...], title: str,
                        problems: Any = None) -> Any:
    """``handler(value)`` of a mapping whose keys must be in ``allowed``: every unknown key and
    every error of the rest at once (one ValidationError). ``problems``: turns the rest's
    ValidationError and the input into error details (default: kept as they are)."""
    if not isinstance(value, dict):
        return handler(value)
    unknown = [k for k in value if k not in allowed]
    errors = [unknown_key_error(k, allowed, value[k]) for k in unknown]
    known = {k: v for k, v in value.items() if k not in unknown}
    out = None
    try:
        out = handler(known)
    except ValidationError as exc:
        errors += problems(exc, known) if problems else as_details(exc.errors())
    if errors:
        raise ValidationError.from_exception_data(title, errors)
    return out


def _setting_details(exc: ValidationError, given: dict) -> list[InitErrorDetails]:
    named = setting_problems(exc, given)
    out = [InitErrorDetails(type=PydanticCustomError("setting", problem),
                            loc=(name,), input=given.get(name)) for name, problem in named]
    return out + as_details([e for e in exc.errors() if not e["loc"] or e["loc"][0] not in dict(named)])


class RunSettingsBase(BaseModel):
    """A layer of run settings: every key one of :func:`profile_settings`, refused values named
    as RunConfig names them (``expected ..., got ...``), every problem at once."""

    model_config = ConfigDict(strict=True, extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _messages(cls, value: Any, handler: Any, info: ValidationInfo) -> Any:
        return validate_known_keys(value, handler, cls.allowed_keys(info), cls.__name__, _setting_details)

    @classmethod
    def allowed_keys(cls, info: ValidationInfo) -> tuple[str, ...]:
        """The keys of this layer (a subclass may allow more: per-dataset layers)."""
        return tuple(cls.model_fields)

    def layer(self) -> dict:
        """The settings given, JSON form (sizes as lists)."""
        out = self.model_dump(exclude_unset=True)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _run_settings_model() -> type[BaseModel]:
    """The run settings a profile layer may set (any subset of :func:`profile_settings`), with
    RunConfig's types, ranges, defaults and help."""
    from pydantic import create_model

    definitions = {name: (_field(name).annotation, _field(name)) for name in profile_settings()}
    model = create_model("RunSettings", __base__=RunSettingsBase, __module__=__name__, **definitions)
    model.__doc__ = ("Run settings (RunConfig fields): any subset; an unset one keeps the value of the "
                     "layer below, or RunConfig's default.")
    return model


RunSettings = _run_settings_model()


__all__ = ["RunConfig", "RunSettings", "RunSettingsBase", "Setting", "SettingError",
           "describe", "field_meta", "field_names", "profile_settings", "setting",
           "setting_problem", "unknown_key_error", "validate_known_keys"]
