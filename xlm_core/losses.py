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
  (``border="symmetric"``; named ``softargmax-r<radius>-sym``). Both the window mean and the
  border rule were chosen by measurement (``benchmarks/decoders.py``,
  ``benchmarks/border_decoders.py``; the numbers: ``docs/decisions.md``). The softmax a network learns
  is wider than the target; its mean averages that uncertainty, where a quadratic through the
  top 3x3 logits sees only the peak. On a target-shaped map it is exact to < 0.015 px.
- mse, bce, awing: :func:`xlm_core.heatmaps.decode_subpixel` (argmax + a Newton step on the
  log-map, as in DARK): exact on a Gaussian. (One bce run, UNet++/VGG19 on the hand phantoms
  for 72 epochs on a GPU, scored 0.19 x the mean shape with it and 0.24 with the window mean.)
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
    """Mean over (B, L, H, W) of (logits - target)^2: raw logits regress the Gaussian."""
    _check_pair(logits, target)
    return F.mse_loss(logits.float(), target.float())


def bce_heatmap_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel binary cross-entropy of sigmoid(logits) vs the Gaussian soft label."""
    _check_pair(logits, target)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def spatial_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between softmax over H*W positions and target/sum(target), per landmark.

    Averaged over the (B, L) maps whose target is not all zero; 0 (with a gradient path)
    when every target is empty.
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
    """Adaptive wing loss (Wang et al. 2019) of sigmoid(logits) vs target, mean over pixels.

    With d = |target - sigmoid(logits)| and a = alpha - target:
    omega * ln(1 + (d / eps)^a) for d < theta, else A * d - C, A and C making it C1 at theta.
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
    """The loss ``name`` as ``fn(logits (B, L, H, W), target (B, L, H, W)) -> scalar``."""
    return _LOSSES[check_loss_name(name)]


def loss_activation(name: str, logits: torch.Tensor) -> torch.Tensor:
    """(..., L, H, W) logits -> the map loss ``name`` fits to the Gaussian (same shape).

    Identity for mse, sigmoid for bce/awing, the softmax over H*W for spatial_ce.
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
    """Landmarks from logits (B, L, H, W) -> (B, L, 2) float32 (x, y) grid px, sub-pixel.

    The loss's activation (:func:`loss_activation`), then the loss's decoder (module
    docstring; ``sigma``: the training targets' sigma in grid px, which sets the soft-argmax
    window). Detached, on the logits' device.
    """
    key = check_loss_name(name)
    if logits.ndim < 3:
        raise XLMError(f"decode_for_loss expects logits (B, L, H, W); got {tuple(logits.shape)}")
    maps = _ACTIVATIONS[key](logits.detach().float())
    return _decoder(key, sigma)[1](maps).float()
