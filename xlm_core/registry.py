"""The names a run chooses, torch-free: losses, their decoders, architectures, precisions.

The profile checker (:mod:`xlm_core.study.profile`), the study runner and the run config read
names here without importing torch; the modules that build things (:mod:`xlm_core.losses`,
:mod:`xlm_core.models`, :mod:`xlm_core.evaluation`) take their tables from here. Adding a loss:
a name in :data:`LOSS_NAMES` and its function in ``losses._LOSSES``; an architecture: one row of
:data:`ARCHITECTURES`. Floor: data (imports nothing of xlm_core but :class:`XLMError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xlm_core import XLMError

#: the heatmap losses (functions: :mod:`xlm_core.losses`)
LOSS_NAMES = ("mse", "bce", "spatial_ce", "awing")
#: learning-rate schedules (:func:`xlm_core.training.make_scheduler`)
LR_SCHEDULES = ("plateau", "cosine")
#: numeric precisions of a run (:func:`xlm_core.evaluation.resolve_precision`)
PRECISIONS = ("auto", "fp32", "bf16")


def check_loss_name(name: str) -> str:
    """The loss ``name`` normalised (lower case); XLMError naming the allowed ones otherwise."""
    key = str(name).strip().lower()
    if key not in LOSS_NAMES:
        raise XLMError(f"unknown loss {name!r}; allowed: {', '.join(LOSS_NAMES)}")
    return key


# --------------------------------------------------------------------------- decoders


def check_sigma(sigma: float, truncate: float | None) -> None:
    if not sigma > 0:
        raise XLMError(f"heatmap sigma must be > 0, got {sigma!r}")
    if truncate is not None and not truncate > 0:
        raise XLMError(f"heatmap truncate must be > 0, got {truncate!r}")


def softargmax_radius(sigma: float, truncate: float = 3.0) -> int:
    """Window radius of :func:`xlm_core.heatmaps.decode_softargmax_local` for targets of ``sigma`` (grid px):
    ``ceil(truncate * sigma + 0.5)``, the target disc around any point of the argmax pixel."""
    check_sigma(sigma, truncate)
    return math.ceil(truncate * sigma + 0.5)


# the decoder of every loss before metrics.json named its decoder
LEGACY_DECODER = "newton"


def decoder_name(name: str, sigma: float) -> str:
    """The decoder :func:`xlm_core.losses.decode_for_loss` uses for loss ``name`` and targets of
    ``sigma``: ``"softargmax-r<radius>-sym"`` (spatial_ce) or ``"newton"`` (the others). A run
    scored before the symmetric border rule says ``"softargmax-r<radius>"`` and is scored again."""
    if check_loss_name(name) == "spatial_ce":
        return f"softargmax-r{softargmax_radius(float(sigma))}-sym"
    return "newton"


def scored_decoder(metrics: dict) -> str:
    """The decoder a run's metrics.json was scored with (:data:`LEGACY_DECODER` before
    metrics.json named it)."""
    return str(metrics.get("decoder") or LEGACY_DECODER)


def decoder_is_current(metrics: dict) -> bool:
    """False when a run's metrics.json was scored with another decoder than its loss and sigma
    get now (:func:`decoder_name`; no ``decoder`` key: :data:`LEGACY_DECODER`). Such a finished
    run is scored again from its checkpoint, without training
    (:func:`xlm_core.training.train_and_evaluate`). True when it cannot tell (no loss or sigma)."""
    config = metrics.get("config") if isinstance(metrics, dict) else None
    if not isinstance(config, dict) or config.get("loss") is None or config.get("sigma") is None:
        return True
    try:
        now = decoder_name(str(config["loss"]), float(config["sigma"]))
    except (XLMError, TypeError, ValueError):
        return True  # nothing to score it again with
    return scored_decoder(metrics) == now


# --------------------------------------------------------------------------- architectures


@dataclass(frozen=True)
class ArchSpec:
    """How one smp architecture is built for this study.

    ``smp_name``: the key of ``smp.create_model``; ``divisor``: H and W must be multiples
    of it; ``needs_dilation``: the encoder runs dilated (DeepLabV3), which some encoders
    (VGG, DenseNet, Inception, Xception) cannot do; ``min_train_batch``: smallest batch
    that trains (BatchNorm on a globally pooled map needs 2); ``kwargs``: passed to smp.
    """

    smp_name: str
    divisor: int
    needs_dilation: bool = False
    min_train_batch: int = 1
    kwargs: tuple[tuple[str, object], ...] = ()


# The registry: adding an architecture is one row. Names are the study's (and smp's).
ARCHITECTURES: dict[str, ArchSpec] = {
    "unet": ArchSpec("unet", divisor=32),
    "unetplusplus": ArchSpec("unetplusplus", divisor=32),
    "deeplabv3": ArchSpec(
        "deeplabv3",
        divisor=8,
        needs_dilation=True,
        min_train_batch=2,
        kwargs=(("encoder_output_stride", 8),),
    ),
}
_ARCH_ALIASES = {"unet++": "unetplusplus", "unet_plus_plus": "unetplusplus", "deeplab": "deeplabv3"}

# The paper's encoders (Table 1). Any other smp encoder name (or ``tu-<timm model>``) works too.
PAPER_ENCODERS = ("vgg19", "resnext101_32x8d", "efficientnet-b7")

def normalise_arch(arch: str) -> str:
    key = str(arch).strip().lower()
    return _ARCH_ALIASES.get(key, key)


def canonical_arch(arch: str) -> str:
    key = normalise_arch(arch)
    if key not in ARCHITECTURES:
        raise XLMError(
            f"unknown architecture {arch!r}; allowed: {', '.join(sorted(ARCHITECTURES))}"
        )
    return key


__all__ = [
    "ARCHITECTURES",
    "LEGACY_DECODER",
    "LOSS_NAMES",
    "LR_SCHEDULES",
    "PAPER_ENCODERS",
    "PRECISIONS",
    "ArchSpec",
    "canonical_arch",
    "check_loss_name",
    "check_sigma",
    "decoder_is_current",
    "decoder_name",
    "normalise_arch",
    "scored_decoder",
    "softargmax_radius",
]
