"""Heatmap losses and the landmark decoding that matches each of them.

Every loss takes the model's raw output and the Gaussian targets of
:func:`xlm_core.heatmaps.gaussian_heatmaps` (peak 1 at the landmark, 0 far away)::

    loss(logits (B, L, H, W), target (B, L, H, W)) -> scalar tensor

``"mse"`` (the paper's family): mean squared error between the *raw* logits and the
    Gaussian target. No activation: the network regresses the heatmap directly, the common
    choice in heatmap regression (and what the paper's U-Net++ setting implies); its
    optimum is logits == target.
``"bce"`` (Zhu et al. 2021): binary cross-entropy with logits against the Gaussian used as
    a soft per-pixel label; optimum sigmoid(logits) == target.
``"spatial_ce"``: per landmark, a softmax over all H x W positions is a distribution of
    the landmark's position; the loss is its cross-entropy with the target normalised to
    sum 1, averaged over landmarks (landmarks with an all-zero target, i.e. outside the
    image, are skipped); optimum logits == log(target) + const.
``"awing"``: the adaptive wing loss (Wang, Bo and Fuxin, ICCV 2019; alpha 2.1, omega 14,
    epsilon 1, theta 0.5, without the paper's weight map) on sigmoid(logits); optimum
    sigmoid(logits) == target.

:func:`decode_for_loss` turns logits into (x, y) grid coordinates with the activation its
loss trained (raw for mse, sigmoid for bce/awing, the softmax over positions for spatial_ce)
and a decoder chosen by measurement (:func:`xlm_core.registry.decoder_name` names it; metrics.json records it):

- spatial_ce: :func:`xlm_core.heatmaps.decode_softargmax_local`, the mean position of the
  softmax within ``softargmax_radius(sigma)`` pixels of its maximum; where that window would
  cross the border, per axis the largest window centred on the maximum that fits
  (``border="symmetric"``; named ``softargmax-r<radius>-sym``).
- mse, bce, awing: :func:`xlm_core.heatmaps.decode_subpixel` (argmax + a Newton step on the
  log-map, as in DARK): exact on a Gaussian.

Why these decoders (the window mean, its border rule, Newton for the other losses), with the
commands that measure them again: ``docs/decisions.md``, section "Decoders".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from xlm_core import XLMError
from xlm_core.heatmaps import decode_softargmax_local, decode_subpixel
from xlm_core.registry import LOSS_NAMES, check_loss_name, decoder_name, softargmax_radius

__all__ = ["decode_for_loss", "get_loss", "loss_activation"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Adaptive wing loss constants (Wang et al. 2019, section 4.2)
AWING_ALPHA = 2.1
AWING_OMEGA = 14.0
AWING_EPSILON = 1.0
AWING_THETA = 0.5


def _check_pair(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim != 4 or tuple(logits.shape) != tuple(target.shape):
        raise XLMError(
            f"loss expects logits and target of the same shape (B, L, H, W); got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}"
        )


def mse_heatmap_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between raw logits and the Gaussian target (the paper's family).

    Args:
        logits: ``(B, L, H, W)`` raw network output; no activation is applied.
        target: ``(B, L, H, W)`` Gaussian heatmaps (peak 1 at the landmark).

    Returns:
        Scalar float32 tensor: the mean over (B, L, H, W) of ``(logits - target)^2``.

    Raises:
        XLMError: if the shapes differ or are not 4-D.
    """
    _check_pair(logits, target)
    return F.mse_loss(logits.float(), target.float())


def bce_heatmap_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy of sigmoid(logits) against the Gaussian as a soft label.

    Args:
        logits: ``(B, L, H, W)`` raw network output (the sigmoid is applied inside).
        target: ``(B, L, H, W)`` Gaussian heatmaps in [0, 1].

    Returns:
        Scalar float32 tensor: the mean over all pixels.

    Raises:
        XLMError: if the shapes differ or are not 4-D.
    """
    _check_pair(logits, target)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def spatial_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between a softmax over the H*W positions and the normalised target.

    Per landmark map, the softmax over positions is compared with ``target / sum(target)``.
    Averaged over the (B, L) maps whose target is not all zero (a landmark outside the image
    has an empty target).

    Args:
        logits: ``(B, L, H, W)`` raw network output.
        target: ``(B, L, H, W)`` Gaussian heatmaps (negative values are clamped to 0).

    Returns:
        Scalar float32 tensor; 0 (with a gradient path) when every target is empty.

    Raises:
        XLMError: if the shapes differ or are not 4-D.
    """
    _check_pair(logits, target)
    log_p = torch.log_softmax(logits.float().flatten(2), dim=-1)  # (B, L, H*W)
    q = target.float().flatten(2).clamp(min=0)
    mass = q.sum(-1)  # (B, L)
    valid = mass > 0
    q = q / mass.clamp(min=torch.finfo(q.dtype).tiny)[..., None]
    ce = -(q * log_p).sum(-1)  # (B, L)
    if not bool(valid.any()):
        return 0.0 * logits.float().sum()
    return ce[valid].mean()


def adaptive_wing_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Adaptive wing loss (Wang et al. 2019) of sigmoid(logits) against the target.

    With ``d = |target - sigmoid(logits)|`` and ``a = alpha - target``: ``omega * ln(1 + (d /
    eps)^a)`` for ``d < theta``, else ``A * d - C``, ``A`` and ``C`` making it C1 at theta
    (constants ``AWING_*``; no weight map).

    Args:
        logits: ``(B, L, H, W)`` raw network output (the sigmoid is applied inside).
        target: ``(B, L, H, W)`` Gaussian heatmaps in [0, 1].

    Returns:
        Scalar float32 tensor: the mean over all pixels.

    Raises:
        XLMError: if the shapes differ or are not 4-D.
    """
    _check_pair(logits, target)
    y = target.float()
    y_hat = torch.sigmoid(logits.float())
    d = (y - y_hat).abs()
    a = AWING_ALPHA - y
    ratio = AWING_THETA / AWING_EPSILON
    big_a = (
        AWING_OMEGA
        * (1.0 / (1.0 + torch.pow(ratio, a)))
        * a
        * torch.pow(ratio, a - 1.0)
        / AWING_EPSILON
    )
    big_c = AWING_THETA * big_a - AWING_OMEGA * torch.log1p(torch.pow(ratio, a))
    small = AWING_OMEGA * torch.log1p(torch.pow(d / AWING_EPSILON, a))
    large = big_a * d - big_c
    return torch.where(d < AWING_THETA, small, large).mean()


_LOSSES: dict[str, LossFn] = {
    "mse": mse_heatmap_loss,
    "bce": bce_heatmap_loss,
    "spatial_ce": spatial_ce_loss,
    "awing": adaptive_wing_loss,
}


def _spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.flatten(-2), dim=-1).view_as(logits)


# The map each loss trains towards a Gaussian: the one to decode (and to display).
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mse": lambda z: z,
    "bce": torch.sigmoid,
    "spatial_ce": _spatial_softmax,
    "awing": torch.sigmoid,
}

if tuple(_LOSSES) != LOSS_NAMES:  # the registry names every loss, in this order
    raise ImportError(f"xlm_core.registry.LOSS_NAMES {LOSS_NAMES} != losses._LOSSES {tuple(_LOSSES)}")


def get_loss(name: str) -> LossFn:
    """The loss function registered under ``name``.

    Args:
        name: one of :data:`xlm_core.registry.LOSS_NAMES` (``mse``, ``bce``, ``spatial_ce``,
            ``awing``).

    Returns:
        ``fn(logits (B, L, H, W), target (B, L, H, W)) -> scalar tensor``.

    Raises:
        XLMError: for an unknown loss name.
    """
    return _LOSSES[check_loss_name(name)]


def loss_activation(name: str, logits: torch.Tensor) -> torch.Tensor:
    """The map loss ``name`` fits to the Gaussian: its activation applied to ``logits``.

    Identity for mse, sigmoid for bce/awing, the softmax over H*W for spatial_ce.

    Args:
        name: a loss name of :data:`xlm_core.registry.LOSS_NAMES`.
        logits: ``(..., L, H, W)`` raw network output.

    Returns:
        Tensor of the same shape as ``logits``.

    Raises:
        XLMError: for an unknown loss name.
    """
    return _ACTIVATIONS[check_loss_name(name)](logits)


def _decoder(name: str, sigma: float) -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
    """(name, function) of the decoder of loss ``name`` for targets of ``sigma``: the one
    place that pairs a loss with its decoder function (module docstring; the name:
    :func:`xlm_core.registry.decoder_name`)."""
    label = decoder_name(name, sigma)
    if check_loss_name(name) == "spatial_ce":
        radius = softargmax_radius(float(sigma))
        return label, lambda maps: decode_softargmax_local(maps, radius, border="symmetric")
    return label, decode_subpixel


@torch.no_grad()
def decode_for_loss(name: str, logits: torch.Tensor, sigma: float) -> torch.Tensor:
    """Landmark coordinates from logits, decoded the way loss ``name`` trained them.

    The loss's activation (:func:`loss_activation`), then the loss's decoder (module docstring).
    Runs without gradients; the result is detached, on the logits' device.

    Args:
        name: a loss name of :data:`xlm_core.registry.LOSS_NAMES`.
        logits: ``(B, L, H, W)`` raw network output.
        sigma: the training targets' Gaussian sigma in grid pixels (sets the soft-argmax window
            of spatial_ce).

    Returns:
        ``(B, L, 2)`` float32 tensor of sub-pixel (x, y) grid coordinates.

    Raises:
        XLMError: for an unknown loss name or logits with fewer than 3 dimensions.
    """
    key = check_loss_name(name)
    if logits.ndim < 3:
        raise XLMError(f"decode_for_loss expects logits (B, L, H, W); got {tuple(logits.shape)}")
    maps = _ACTIVATIONS[key](logits.detach().float())
    return _decoder(key, sigma)[1](maps).float()
