"""One run of the study, fully described: the contract between the runner, the run
notebook and the training engine.

A :class:`RunConfig` is what ``xlm train`` parses, what the study runner expands a
profile into, and what papermill injects into ``notebooks/train_evaluate.py`` (one
parameter, ``config``: :meth:`RunConfig.to_dict`). Its normalised form is hashed into the
run id.

RunConfig is a pydantic dataclass: every field is described once, by its type (constraints
in ``Annotated`` and ``Field``), its default and its one ``description``. Construction checks
and converts every field (every refused one at once: :class:`SettingError`), so code downstream
never casts. The study profile's run settings (:data:`RunSettings`), the flags of ``xlm train``
(made from :func:`run_schema`), the run notebook and the profile's JSON Schema (``xlm study
schema``) derive from these fields. A field the study plan sets rather than a profile's run
settings carries :class:`Plan`; one whose ``xlm train`` option is not ``--`` + its name carries
:class:`Flag`. An encoder name is checked against smp where a model is built
(``xlm_core.models.check_combination``, called by the profile checker and the training engine).

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
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, TypeAdapter, ValidationError, create_model
from pydantic import model_serializer, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from xlm_core.registry import ARCHITECTURES, LOSS_NAMES, LR_SCHEDULES, PRECISIONS, normalise_arch
from xlm_core.validation import STRICT, SettingsError, problem, problem_at, problems_of, raise_problems


class SettingError(SettingsError):
    """Run settings refused (a run's config, ``xlm train``'s flags): every ``(field, problem)``
    in ``problems``; ``name``: the first field refused."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("run settings", problems)
        self.name = problems[0][0]


@dataclass(frozen=True)
class Plan:
    """On a RunConfig field: the study plan sets it (``where`` in a profile), not a profile's run settings."""

    where: str


@dataclass(frozen=True)
class Flag:
    """On a RunConfig field: its ``xlm train`` option, where not ``--`` + its name with dashes
    (``name`` None: no option), and the option's ``choices`` where the type names none."""

    name: str | None
    choices: tuple[str, ...] = ()


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def no_yaml_text(value: Any) -> Any:
    """A number written so that YAML reads it as text (``1e-4``) is refused with the way to write it."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise problem(f"expected a number, got text {value!r} (YAML reads 1e-4 as text: write 1.0e-4)")
    return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _known_arch(arch: str) -> str:
    if normalise_arch(arch) not in ARCHITECTURES:
        raise problem(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)} (or an alias)")
    return arch


Number = Annotated[float, BeforeValidator(no_yaml_text), Field(allow_inf_nan=False)]
"""A finite number; ``1e-4`` (YAML's text) refused with the way to write it. A range goes in the
field's ``Field`` or before the validator (``Annotated[float, Field(gt=0), *Number.__metadata__]``),
else the JSON Schema gets no keyword for it."""
Size = Annotated[tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]], BeforeValidator(_as_tuple)]
"""(H, W) in pixels; a list of two in YAML and JSON."""
Text = Annotated[str, Field(pattern=r"^\S")]  # non-empty (no leading blank)


@pydantic_dataclass(config=STRICT)
class RunConfig:
    dataset: Annotated[Text, Plan("backbones.dataset, transfer.targets/chains, ablation.dataset")] = Field(
        description="head, hand, chest, ceph, spine (or a dataset.yaml path)")
    root: Annotated[str, Plan("datasets.<d>.root or --data-root")] = Field(
        description="dataset root folder (head, hand, chest; ceph, spine: or a folder holding "
                    "hamedan_university_dataset/, boostnet_labeldata/; a dataset.yaml names its own)")
    out: Annotated[str, Plan("results/<study>/runs/<id>")] = Field(description="run directory")
    arch: Annotated[str, AfterValidator(_known_arch), Plan("backbones.archs/pairs, transfer.arch, ablation.arch")] = \
        Field("unetplusplus", description="unet, unetplusplus or deeplabv3")
    encoder: Annotated[Text, Plan("backbones.encoders/pairs, transfer.encoder, ablation.encoder")] = Field(
        "vgg19", description="encoder name")
    encoder_weights: Text = Field("none", description="imagenet, none or a weights file PATH")
    init: Annotated[Text | None, Plan("the previous stage of a transfer chain")] = Field(
        None, description="checkpoint of an earlier run to start from (transfer)")
    epochs: int = Field(200, ge=1, description="at most this many epochs (early stopping may end sooner)")
    patience: int = Field(20, ge=0, description="early stopping: epochs without improvement")
    train_size: Size = Field((512, 512), description="training grid, height and width in pixels")  # (H, W)
    test_size: Size | None = Field(None, description="evaluation size (null: the dataset's paper test size)")
    batch_size: int = Field(2, ge=1, description="images per optimiser step")
    lr: Number = Field(1e-4, gt=0, description="Adam learning rate (write 1.0e-4, not 1e-4: YAML reads 1e-4 as text)")
    lr_schedule: Literal[LR_SCHEDULES] = Field(
        "plateau", description="plateau: x0.1 after patience//2 epochs without progress (the paper); "
        "cosine: linear warm-up over the first epoch, then cosine decay to 0")
    loss: Literal[LOSS_NAMES] = Field("mse", description="mse, bce, spatial_ce or awing")
    sigma: Number = Field(2.0, gt=0, description="Gaussian sigma in heatmap-grid pixels")
    folds: Annotated[int | None, Plan("backbones.folds")] = Field(
        None, ge=2, description="k-fold cross-validation over the training split")
    fold: Annotated[int | None, Plan("one run per fold of backbones.folds")] = Field(
        None, ge=0, description="held-out fold, 0-based (with --folds)")
    folds_over: Annotated[Literal["train", "all"], Plan("transfer.folds")] = Field(
        "train", description="what --folds cuts: train (the training split; the test split scored too) or all "
        "(every usable image, a patient's images in one fold (the dataset's group_by); the held-out fold is the "
        "test part)")
    steps: int | None = Field(None, ge=1, description="train exactly this many optimiser steps (epochs: as many "
                              "as they take, the last one cut short; the cosine schedule spans them); null: "
                              "epochs decide")
    seed: Annotated[int, Plan("seeds, <section>.seeds, ablation.seed")] = Field(
        0, ge=0, description="seed of initialisation, augmentation and shuffling")
    device: Annotated[str, BeforeValidator(_lower), Flag("--device", ("auto", "cpu", "cuda"))] = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="where to train: auto (CUDA when "
        "present), cpu, cuda or cuda:K")
    precision: Literal[PRECISIONS] = Field(  # not in the run id
        "auto", description="forward-pass precision (auto: bf16 autocast on CUDA, and on CPUs with AMX-BF16 "
        "for VGG encoders; fp32 elsewhere)")
    val_fraction: Number = Field(0.1, ge=0, lt=1, description="early-stopping share carved out of the training "
                                 "part (0: none, every training image is fitted and early stopping watches "
                                 "their loss)")
    train_limit: int | None = Field(None, ge=1, description="use the first N training images")
    num_workers: int = Field(0, ge=0, description="data loader worker processes")
    checkpoint_every_s: Annotated[Number, Flag("--checkpoint-every")] = Field(
        0.0, ge=0, description="write the resume state and the best weights at most every S seconds (0: "
        "every epoch)")
    trace_mre: bool = Field(False, description="score the validation and test images after every epoch "
                            "(history.csv); recorded only, the checkpoint is still chosen by the validation loss")
    precise_bn: bool = Field(False, description="re-estimate BatchNorm statistics on the fitted images for the "
                             "chosen weights before scoring (and in the MRE trace)")
    extra: Annotated[dict[str, Any], Plan("datasets.<d>.options"), Flag(None)] = Field(
        default_factory=dict, description="dataset options (annotator, wrist pair, ...): xlm train --option "
        "KEY=VALUE")

    @model_validator(mode="wrap")
    @classmethod
    def _checked(cls, values: Any, handler: Any) -> Any:
        """Every refused field at once, then folds with fold, as a SettingError (an XLMError)."""
        try:
            cfg = handler(values)
            if (cfg.folds is None) != (cfg.fold is None):
                problem_ = f"cross-validation needs both folds and fold, got folds={cfg.folds}, fold={cfg.fold}"
            elif cfg.folds is not None and cfg.fold >= cfg.folds:
                problem_ = f"expected an integer in [0, {cfg.folds}) (folds={cfg.folds}), got {cfg.fold}"
            else:
                return cfg
            raise_problems("RunConfig", [problem_at(("fold",), problem_, cfg.fold)])
        except ValidationError as exc:
            raise SettingError(problems_of(exc, RunConfig)) from None

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
        required ones); SettingError naming every unknown key, missing field and refused value."""
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


def field_names() -> tuple[str, ...]:
    """RunConfig's fields, in order."""
    return tuple(RunConfig.__pydantic_fields__)


def marker(name: str, kind: type) -> Any:
    """Field ``name``'s :class:`Plan` or :class:`Flag` (``kind``), None where it has none."""
    return next((m for m in RunConfig.__pydantic_fields__[name].metadata if isinstance(m, kind)), None)


def profile_settings() -> tuple[str, ...]:
    """Fields a study profile sets as run settings (the others are set by the plan: :class:`Plan`)."""
    return tuple(name for name in field_names() if marker(name, Plan) is None)


def run_schema() -> dict:
    """RunConfig's JSON Schema (types, ranges, defaults, descriptions): ``xlm train``'s flags."""
    return TypeAdapter(RunConfig).json_schema()


class RunSettingsBase(BaseModel):
    """A layer of run settings: any subset of :func:`profile_settings`, checked as RunConfig checks them."""

    model_config = STRICT

    @model_serializer(mode="wrap")
    def _given(self, handler: Any) -> dict:
        """Dumped, a layer holds the settings given only (an unset one is not a RunConfig default)."""
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}


RunSettings = create_model(
    "RunSettings", __base__=RunSettingsBase, __module__=__name__,
    __doc__="Run settings (RunConfig fields): any subset; an unset one keeps the value of the layer below, "
            "or RunConfig's default.",
    **{name: (RunConfig.__pydantic_fields__[name].annotation, RunConfig.__pydantic_fields__[name])
       for name in profile_settings()})


__all__ = ["Flag", "Number", "Plan", "RunConfig", "RunSettings", "RunSettingsBase", "SettingError", "Size", "Text",
           "field_names", "marker", "no_yaml_text", "profile_settings", "run_schema"]
