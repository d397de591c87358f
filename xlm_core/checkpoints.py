"""Checkpoint IO: the self-describing ``checkpoint.pt`` of a run, written and read back.

Floor: training (with :mod:`xlm_core.training`, :mod:`xlm_core.evaluation` and
:mod:`xlm_core.predict`, which all read checkpoints through this module; it imports none of them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from xlm_core import XLMError, __version__
from xlm_core.io import atomic_path

if TYPE_CHECKING:
    from xlm_core.config import RunConfig
    from xlm_core.samples import RunSamples

CHECKPOINT_FORMAT = "xlm-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device a run asks for.

    Args:
        name: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``;
            None or empty means ``"auto"``.

    Returns:
        The ``torch.device``.

    Raises:
        XLMError: for ``cuda`` without a GPU, or another name.
    """
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise XLMError("--device cuda requested but no CUDA GPU is available (use --device cpu or auto)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise XLMError(f"unknown device {name!r}; expected auto, cpu or cuda")
    return torch.device(name)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` atomically: the file appears whole or not at all.

    Args:
        path: the file to write.
        obj: what to save.
    """
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Read a run checkpoint (``weights_only=True``).

    Args:
        path: a ``checkpoint.pt`` written by a run (:func:`checkpoint_description` beside
            ``"model"``).

    Returns:
        The checkpoint dict: ``format``, ``model`` (state_dict) and the description.

    Raises:
        XLMError: naming the file when it is missing, corrupt or not such a checkpoint.
    """
    from xlm_core.weights import read_state_dict

    path = Path(path)
    obj = read_state_dict(path)
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT or "model" not in obj:
        raise XLMError(
            f"{path}: not an xlm run checkpoint (expected format {CHECKPOINT_FORMAT!r} with the "
            "model weights and their description)"
        )
    return obj


def model_from_checkpoint(ckpt: dict, path: str | Path) -> torch.nn.Module:
    """Build the checkpoint's architecture and load its weights strictly.

    The model is built on the meta device and its tensors assigned from the checkpoint
    (floating-point ones as float32).

    Args:
        ckpt: a checkpoint dict from :func:`load_checkpoint`.
        path: its file, for error messages.

    Returns:
        The model in eval mode, on the CPU, with ``xlm_spec`` (its ``encoder_weights`` from the
        checkpoint).

    Raises:
        XLMError: when the weights do not fit the described architecture or leave a tensor
            unset.
    """
    from xlm_core.models import build_model

    # built on the meta device: no random initialisation of weights that the checkpoint replaces
    # (torchvision's VGG19 initialises a 123 M-parameter classifier that smp then drops)
    with torch.device("meta"):
        model = build_model(ckpt["arch"], ckpt["encoder"], int(ckpt["n_landmarks"]), "none")
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise XLMError(
            f"{path}: weights do not fit {ckpt['arch']}/{ckpt['encoder']} with "
            f"{ckpt['n_landmarks']} landmarks ({first})"
        ) from None
    model.xlm_spec["encoder_weights"] = ckpt.get("encoder_weights", "none")
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise XLMError(f"{path}: the checkpoint does not hold {', '.join(left[:5])}")
    return model.eval()


def checkpoint_description(cfg: RunConfig, samples: RunSamples, test_size: tuple[int, int]) -> dict:
    """What a checkpoint says about itself, so that loading it needs no other flag.

    Args:
        cfg: the run's configuration.
        samples: the run's images (their dataset names the landmarks and the data source).
        test_size: ``(H, W)`` the run evaluates at.

    Returns:
        A dict: ``format``, ``xlm_version``, ``arch``, ``encoder``, ``encoder_weights``,
        ``n_landmarks``, ``landmark_names``, ``train_size``, ``test_size``, ``normalisation``,
        ``dataset``, ``loss``, ``sigma``, ``data_source`` and ``config`` (the RunConfig as a dict).
    """
    from xlm_core.models import input_normalisation

    mean, std = input_normalisation(cfg.encoder)
    lset = samples.lset
    return {
        "format": CHECKPOINT_FORMAT,
        "xlm_version": __version__,
        "arch": cfg.arch,
        "encoder": cfg.encoder,
        "encoder_weights": cfg.encoder_weights,
        "n_landmarks": lset.n_landmarks,
        "landmark_names": list(lset.landmark_names),
        "train_size": [int(v) for v in cfg.train_size],
        "test_size": [int(v) for v in test_size],
        "normalisation": {"grey_to_rgb": True, "mean": list(mean), "std": list(std), "input_range": [0.0, 1.0]},
        "dataset": lset.name,
        "loss": cfg.loss,
        "sigma": float(cfg.sigma),
        "data_source": lset.data_source,
        "config": cfg.to_dict(),
    }


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "checkpoint_description",
    "load_checkpoint",
    "model_from_checkpoint",
    "resolve_device",
    "save_torch",
]
