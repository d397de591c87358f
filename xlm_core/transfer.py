"""Verified transfer: a model initialised from an earlier run's checkpoint (:func:`load_init`).

Encoder and decoder come from the checkpoint, all of them or an error; the output head is
copied when the landmark count is the same, left as built (re-initialised) otherwise; a
:class:`TransferReport` says what happened. The file is read with
:func:`xlm_core.weights.read_state_dict` (tensors only, never code).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from xlm_core import XLMError
from xlm_core.registry import normalise_arch
from xlm_core.weights import first_names, read_state_dict, tensor_dict

__all__ = ["TransferReport", "load_init"]

_HEAD_PREFIX = "segmentation_head."
_PART_PREFIXES = {"encoder": "encoder.", "decoder": "decoder.", "head": _HEAD_PREFIX}


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
        return tensor_dict(obj, path, "state_dict"), {}, None
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            meta = {k: v for k, v in obj.items() if k != key}
            return tensor_dict(obj[key], path, f"state_dict under {key!r}"), meta, key
    raise XLMError(
        f"{path}: no model weights found: expected a state_dict or a dict with one of "
        f"{list(_WRAPPER_KEYS)}; top-level keys are {first_names([str(k) for k in obj], 10)}"
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
                detail.append(f"{len(missing)} missing ({first_names(missing)})")
            if extra:
                detail.append(f"{len(extra)} not in the model ({first_names(extra)})")
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
                f"{path}: output head does not match the model's ({first_names(bad or head_keys)})"
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
