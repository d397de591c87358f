"""One run of the study, fully described: the contract between the runner, the run
notebook and the training engine.

A :class:`RunConfig` is what ``xlm train`` parses, what the study runner expands a
profile into, and what papermill injects into ``notebooks/train_evaluate.py`` (one
parameter, ``config``: :meth:`RunConfig.to_dict`). Its normalised form is hashed into the
run id.

Every field is described once, in its ``dataclasses.field`` metadata (:func:`_meta`):
the rule its value obeys (:class:`Rule`: type, range, registry names, null or not), the
help text of its ``xlm train`` flag, and where a study profile sets it. Construction checks
and converts every field (``__post_init__``), so code downstream never casts; the profile
checker (:mod:`xlm_core.study.profile`), the flags of ``xlm train``
(:mod:`xlm_core.cli.train`) and the run notebook read the same metadata. An encoder name
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
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from xlm_core import XLMError
from xlm_core.registry import ARCHITECTURES, LOSS_NAMES, LR_SCHEDULES, PRECISIONS, normalise_arch

DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$", re.IGNORECASE)


class SettingError(XLMError):
    """A run setting refused: ``name`` (the field), ``problem`` (``expected ..., got ...``)."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"run setting {name}: {problem}")
        self.name, self.problem = name, problem


@dataclass(frozen=True)
class Rule:
    """What one field accepts. ``kind``: ``int``, ``float``, ``text``, ``bool``, ``size``
    ([H, W], two positive integers), ``dict`` or ``name`` (one of ``names``); ``low``: the
    smallest value (``low_open``: refused itself, ``> low``); ``below``: values must be less;
    ``null``: None is allowed; ``pattern``: a text must match; ``what``: the description
    when the generated one would not say enough."""

    kind: str
    low: float | None = None
    low_open: bool = False
    below: float | None = None
    null: bool = False
    names: tuple[str, ...] = ()
    pattern: re.Pattern | None = None
    what: str = ""

    def describe(self) -> str:
        if self.what:
            text = self.what
        elif self.kind in ("int", "float"):
            noun = "an integer" if self.kind == "int" else "a number"
            if self.below is not None:
                text = f"{noun} in [{_num(self.low)}, {_num(self.below)})"
            elif self.low is not None:
                text = f"{noun} {'>' if self.low_open else '>='} {_num(self.low)}"
            else:
                text = noun
        else:
            text = {"size": "[H, W], two positive integers", "bool": "true or false", "dict": "a mapping",
                    "text": "text", "name": "one of " + ", ".join(self.names)}[self.kind]
        return text + (", or null" if self.null else "")

    def convert(self, name: str, value: Any, hint: str = "") -> Any:
        """``value`` checked and converted (tuples for sizes, floats for numbers); SettingError otherwise."""
        if value is None and self.null:
            return None
        ok, out = _CONVERTERS[self.kind](self, value)
        if not ok:
            raise SettingError(name, f"expected {self.describe()}{f' ({hint})' if hint else ''}, "
                                     f"got {_kind(value)} {value!r}")
        return out


def _num(v: float | None) -> str:
    return str(int(v)) if v is not None and float(v).is_integer() else str(v)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _in_range(rule: Rule, v: float) -> bool:
    if rule.low is not None and (v < rule.low or (rule.low_open and v == rule.low)):
        return False
    return rule.below is None or v < rule.below


def _int(rule: Rule, v: Any) -> tuple[bool, Any]:
    ok = isinstance(v, int) and not isinstance(v, bool) and _in_range(rule, v)
    return ok, int(v) if ok else None


def _float(rule: Rule, v: Any) -> tuple[bool, Any]:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and _in_range(rule, v)
    return ok, float(v) if ok else None


def _text(rule: Rule, v: Any) -> tuple[bool, Any]:
    ok = isinstance(v, str) and (rule.pattern is None or bool(rule.pattern.match(v)))
    return ok, v


def _name(rule: Rule, v: Any) -> tuple[bool, Any]:
    return isinstance(v, str) and v in rule.names, v


def _size(rule: Rule, v: Any) -> tuple[bool, Any]:
    ok = (isinstance(v, (list, tuple)) and len(v) == 2
          and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v))
    return ok, tuple(int(x) for x in v) if ok else None


_CONVERTERS = {
    "int": _int, "float": _float, "text": _text, "name": _name, "size": _size,
    "bool": lambda rule, v: (isinstance(v, bool), v),
    "dict": lambda rule, v: (isinstance(v, dict) and all(isinstance(k, str) for k in v), dict(v) if isinstance(v, dict) else v),
}
_NON_EMPTY = re.compile(r"\S")


def _setting(default: Any = MISSING, **meta: Any) -> Any:
    """A RunConfig field of ``default`` (MISSING: required) with its metadata (:func:`_meta`)."""
    return field(default=default, metadata=_meta(**meta))


def _meta(*, rule: Rule, help: str, hint: str = "", flag: str | None = "",
          choices: bool | tuple[str, ...] = False, profile: str | bool = True) -> dict:
    """The metadata of a RunConfig field.

    Args:
        rule: what the field accepts (:class:`Rule`).
        help: the help of its ``xlm train`` flag (the default is appended there).
        hint: added to the rule's description in error messages (and the profile checker's).
        flag: the ``xlm train`` flag; ``""``: ``--`` and the name with dashes; None: no flag.
        choices: the flag's choices (argparse refuses the others): True, the rule's names.
        profile: True: a run setting of study profiles (``run:``, ``datasets.<d>``,
            ``<section>.run``); otherwise where a profile sets it instead (text).
    """
    return {"rule": rule, "help": help, "hint": hint, "flag": flag, "choices": choices, "profile": profile}


_TEXT = Rule("text", pattern=_NON_EMPTY, what="non-empty text")
_PLAN = "set by the study plan"


@dataclass
class RunConfig:
    dataset: str = _setting(rule=_TEXT, help="head, hand, chest, ceph, spine (or a dataset.yaml path)",
                            profile=f"{_PLAN}: backbones.dataset, transfer.targets/chains, ablation.dataset")
    root: str = _setting(rule=Rule("text"), profile=f"{_PLAN}: datasets.<d>.root or --data-root",
                         help="dataset root folder (head, hand, chest; ceph, spine: or a folder holding "
                         "hamedan_university_dataset/, boostnet_labeldata/; a dataset.yaml names its own)")
    out: str = _setting(rule=Rule("text"), help="run directory", profile=f"{_PLAN}: results/<study>/runs/<id>")
    arch: str = _setting("unetplusplus", rule=Rule("text", what="one of " + ", ".join(ARCHITECTURES) + " (or an alias)"),
                         help="unet, unetplusplus or deeplabv3",
                         profile=f"{_PLAN}: backbones.archs/pairs, transfer.arch, ablation.arch")
    encoder: str = _setting("vgg19", rule=_TEXT, help="encoder name",
                            profile=f"{_PLAN}: backbones.encoders/pairs, transfer.encoder, ablation.encoder")
    encoder_weights: str = _setting("none", rule=Rule("text", pattern=_NON_EMPTY, what="'imagenet', 'none' or a path to a weights file"),
                                    help="imagenet, none or a weights file PATH")
    init: str | None = _setting(None, rule=Rule("text", pattern=_NON_EMPTY, null=True),
                                help="checkpoint of an earlier run to start from (transfer)",
                                profile=f"{_PLAN}: the previous stage of a transfer chain")
    epochs: int = _setting(200, rule=Rule("int", low=1), help="at most this many epochs (early stopping may end sooner)")
    patience: int = _setting(20, rule=Rule("int", low=0), help="early stopping: epochs without improvement")
    train_size: tuple[int, int] = _setting((512, 512), rule=Rule("size"),
                                           help="training grid, height and width in pixels")  # (H, W)
    test_size: tuple[int, int] | None = _setting(None, rule=Rule("size", null=True), hint="null: the paper's size",
                                                 help="evaluation size (default: the dataset's paper test size)")
    batch_size: int = _setting(2, rule=Rule("int", low=1), help="images per optimiser step")
    lr: float = _setting(1e-4, rule=Rule("float", low=0, low_open=True), help="Adam learning rate",
                         hint="write 1.0e-4, not 1e-4: YAML reads 1e-4 as text")
    lr_schedule: str = _setting("plateau", rule=Rule("name", names=LR_SCHEDULES), choices=True,
                                help="plateau: x0.1 after patience//2 epochs without progress (the paper); "
                                     "cosine: linear warm-up over the first epoch, then cosine decay to 0")
    loss: str = _setting("mse", rule=Rule("name", names=LOSS_NAMES), help="mse, bce, spatial_ce or awing")
    sigma: float = _setting(2.0, rule=Rule("float", low=0, low_open=True), help="Gaussian sigma in heatmap pixels",
                            hint="Gaussian sigma in heatmap-grid pixels")
    folds: int | None = _setting(None, rule=Rule("int", low=2, null=True),
                                 help="k-fold cross-validation over the training split", profile=f"{_PLAN}: backbones.folds")
    fold: int | None = _setting(None, rule=Rule("int", low=0, null=True), help="held-out fold, 0-based (with --folds)",
                                profile=f"{_PLAN}: one run per fold of backbones.folds")
    seed: int = _setting(0, rule=Rule("int", low=0), help="seed of initialisation, augmentation and shuffling",
                         profile=f"{_PLAN}: seeds, <section>.seeds, ablation.seed")
    device: str = _setting("auto", rule=Rule("text", pattern=DEVICE_RE, what="'auto', 'cpu', 'cuda' or 'cuda:K'"),
                           help="where to train (auto: CUDA when present)", choices=("auto", "cpu", "cuda"))
    precision: str = _setting("auto", rule=Rule("name", names=PRECISIONS), choices=True,  # not in the run id
                              hint="auto: bf16 on CUDA, and on CPUs with AMX for VGG encoders",
                              help="forward-pass precision (default auto: bf16 autocast on CUDA, and on CPUs "
                                   "with AMX-BF16 for VGG encoders; fp32 elsewhere)")
    val_fraction: float = _setting(0.1, rule=Rule("float", low=0, below=1), hint="0: no validation images",
                                   help="early-stopping share carved out of the training part (default 0.1; 0: "
                                        "none, every training image is fitted and early stopping watches their loss)")
    train_limit: int | None = _setting(None, rule=Rule("int", low=1, null=True), help="use the first N training images")
    num_workers: int = _setting(0, rule=Rule("int", low=0), help="data loader worker processes")
    checkpoint_every_s: float = _setting(0.0, rule=Rule("float", low=0), hint="seconds; 0: every epoch",
                                         flag="--checkpoint-every",
                                         help="write the resume state and the best weights at most every S seconds "
                                              "(default: every epoch)")
    trace_mre: bool = _setting(False, rule=Rule("bool"),
                               help="score the validation and test images after every epoch (history.csv); "
                                    "recorded only, the checkpoint is still chosen by the validation loss")
    precise_bn: bool = _setting(False, rule=Rule("bool"), hint="re-estimate BatchNorm statistics before scoring",
                                help="re-estimate BatchNorm statistics on the fitted images for the chosen weights "
                                     "before scoring (and in the MRE trace)")
    extra: dict = field(default_factory=dict, metadata=_meta(
        rule=Rule("dict"), flag=None, help="dataset options (annotator, wrist pair, ...): xlm train --option KEY=VALUE",
        profile=f"{_PLAN}: datasets.<d>.options"))

    def __post_init__(self) -> None:
        for f in fields(self):
            meta = f.metadata
            setattr(self, f.name, meta["rule"].convert(f.name, getattr(self, f.name), meta["hint"]))
        if normalise_arch(self.arch) not in ARCHITECTURES:
            raise SettingError("arch", f"unknown architecture {self.arch!r}; allowed: {', '.join(ARCHITECTURES)}")
        if (self.folds is None) != (self.fold is None):
            raise SettingError("fold", f"cross-validation needs both folds and fold, got folds={self.folds}, "
                                       f"fold={self.fold}")
        if self.folds is not None and self.fold >= self.folds:
            raise SettingError("fold", f"expected an integer in [0, {self.folds}) (folds={self.folds}), got {self.fold}")

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
        missing = [f.name for f in fields(cls) if f.name not in d and f.default is MISSING
                   and f.default_factory is MISSING]
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
        for key, before in (("lr_schedule", "plateau"), ("precise_bn", False)):
            if d[key] == before:
                d.pop(key)
        return d

    def run_hash(self, data_fingerprint: str = "") -> str:
        blob = json.dumps(self.normalised(), sort_keys=True) + "|" + data_fingerprint
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def field_names() -> tuple[str, ...]:
    """RunConfig's fields, in order."""
    return tuple(f.name for f in fields(RunConfig))


def field_meta(name: str) -> dict:
    """The metadata of field ``name``: rule, help, hint, flag, choices, profile."""
    return dict(next(f for f in fields(RunConfig) if f.name == name).metadata)


def profile_settings() -> tuple[str, ...]:
    """Fields a study profile sets as run settings (the others are set by the plan)."""
    return tuple(f.name for f in fields(RunConfig) if f.metadata["profile"] is True)


def check_setting(name: str, value: Any) -> Any:
    """``value`` of field ``name`` checked and converted alone (a sweep, a profile layer);
    JSON form (sizes as lists). SettingError naming the field otherwise."""
    meta = field_meta(name)
    out = meta["rule"].convert(name, value, meta["hint"])
    return list(out) if isinstance(out, tuple) else out


__all__ = ["Rule", "RunConfig", "SettingError", "check_setting", "field_meta", "field_names", "profile_settings"]
