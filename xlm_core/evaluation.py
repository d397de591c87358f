"""Evaluation of a trained model: predictions on the test images, both protocols, the outputs.

Images are evaluated at the run's test size (the dataset's paper test size unless the run
sets one). Two protocols, reported side by side and never mixed (``docs/protocols.md``):

- ``clean``: the loss-aware sub-pixel decoder (:func:`xlm_core.losses.decode_for_loss`) on the
  grid, mapped back to original-image pixels with :func:`xlm_core.geometry.from_grid`, scored
  with :func:`xlm_core.metrics.evaluate_clean` against the float ground truth;
- ``zhu``: integer argmax on the grid (:func:`xlm_core.heatmaps.decode_argmax`), scored with
  :func:`xlm_core.metrics.evaluate_zhu`, Zhu et al.'s evaluator exactly (ground truth mapped
  to the grid by ``round(p * new / old)`` per axis, :func:`xlm_core.metrics.zhu_to_grid`).

Every SCORE also carries ``mean_shape_mre``: the mean training shape (normalised image
coordinates, :func:`xlm_core.metrics.mean_shape_baseline`) placed on the same images and
scored with the same protocol, so a number can always be read against "no model at all".

**Why this file is long** (~600 lines, nearly half of them docstrings): it is the one path
from a model to a SCORE that training, ``xlm evaluate`` and ``xlm predict`` share (padding,
precision, decoding both ways, both protocols with their baseline, the files a run writes),
so that no caller can score a run another way.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlm_core import XLMError
from xlm_core.datasets.base import LandmarkSet, Sample
from xlm_core.geometry import from_grid
from xlm_core.heatmaps import decode_argmax
from xlm_core.io import atomic_write
from xlm_core.landmark_csv import write_landmark_csv
from xlm_core.metrics import (
    ZHU_WRIST_PAIR,
    evaluate_clean,
    evaluate_zhu,
    mean_shape_baseline,
    normalise_landmarks,
    place_mean_shape,
    radial_errors,
    zhu_to_grid,
    zhu_units,
)
from xlm_core.registry import PRECISIONS
from xlm_core.torchdata import HeatmapDataset, make_loader

PROTOCOLS = ("clean", "zhu")
#: datasets the ``zhu`` protocol defines a unit for
ZHU_DATASETS = ("head", "hand", "chest")


@dataclass
class SplitPredictions:
    """Predictions of one split, on the grid and in original pixels, beside the truth.

    Attributes:
        ids: image ids, N of them, in the split's order.
        image_hws: ``[(H, W)] * N`` original image sizes.
        grid_hw: ``(H, W)`` of the grid the model predicted on (the test size).
        grid_subpixel: ``(N, L, 2)`` float64 (x, y) grid px from the loss-aware decoder.
        grid_argmax: ``(N, L, 2)`` float64 (x, y) integer grid px (the zhu protocol).
        pred_px: ``(N, L, 2)`` float64 (x, y) original px (``grid_subpixel`` mapped back).
        gt_px: ``(N, L, 2)`` float64 (x, y) ground truth in original px.
    """

    ids: list[str]
    image_hws: list[tuple[int, int]]
    grid_hw: tuple[int, int]
    grid_subpixel: np.ndarray
    grid_argmax: np.ndarray
    pred_px: np.ndarray
    gt_px: np.ndarray

    @classmethod
    def from_grid(cls, samples: Sequence[Sample], image_hws: Sequence[tuple[int, int]], grid_hw: tuple[int, int],
                  grid_subpixel: np.ndarray, grid_argmax: np.ndarray) -> SplitPredictions:
        """Build from grid predictions: maps the sub-pixel ones back to original pixels.

        Args:
            samples: the N samples predicted (their ids and ground-truth landmarks are kept).
            image_hws: ``[(H, W)] * N`` original image sizes.
            grid_hw: ``(H, W)`` of the prediction grid.
            grid_subpixel: ``(N, L, 2)`` (x, y) sub-pixel grid coordinates.
            grid_argmax: ``(N, L, 2)`` (x, y) integer argmax grid coordinates.

        Returns:
            The :class:`SplitPredictions`.
        """
        grid_subpixel = np.asarray(grid_subpixel, dtype=np.float64)
        return cls(
            ids=[s.id for s in samples],
            image_hws=list(image_hws),
            grid_hw=(int(grid_hw[0]), int(grid_hw[1])),
            grid_subpixel=grid_subpixel,
            grid_argmax=np.asarray(grid_argmax, dtype=np.float64),
            pred_px=np.stack([from_grid(p, hw, grid_hw) for p, hw in zip(grid_subpixel, image_hws)]),
            gt_px=np.stack([np.asarray(s.landmarks, dtype=np.float64) for s in samples]),
        )


def input_divisor(model: torch.nn.Module) -> int:
    """The number H and W of the model's input must be multiples of.

    Args:
        model: a model built by :func:`xlm_core.models.build_model`.

    Returns:
        The divisor (32 for U-Net/U-Net++, 8 for DeepLabV3).

    Raises:
        XLMError: if the model carries no ``xlm_spec``.
    """
    from xlm_core.models import required_divisor

    spec = model_spec(model)
    return required_divisor(spec["arch"], spec["encoder"])


def model_spec(model: torch.nn.Module) -> dict:
    """The spec ``build_model`` attached to ``model``.

    Args:
        model: a model built by :func:`xlm_core.models.build_model`.

    Returns:
        ``model.xlm_spec``: a dict with ``arch``, ``encoder``, ``n_landmarks``,
        ``encoder_weights``.

    Raises:
        XLMError: if the model carries no ``xlm_spec``.
    """
    spec = getattr(model, "xlm_spec", None)
    if not spec:
        raise XLMError("this model was not built by xlm_core.models.build_model (no xlm_spec)")
    return spec


def forward_padded(model: torch.nn.Module, grey: torch.Tensor) -> torch.Tensor:
    """Logits for grey images of any size.

    Zero-pads bottom/right to the architecture's divisor (512x368, the hand test size, is not
    a multiple of 32), converts with :func:`xlm_core.models.to_model_input` and crops the logits
    back; bottom/right padding leaves (x, y) unchanged.

    Args:
        model: a model built by :func:`xlm_core.models.build_model`.
        grey: ``(B, 1, H, W)`` grey images in [0, 1], on the model's device.

    Returns:
        ``(B, L, H, W)`` logits (in the dtype the forward pass produced).
    """
    from xlm_core.models import pad_to_multiple, to_model_input

    h, w = grey.shape[-2:]
    x = to_model_input(pad_to_multiple(grey, input_divisor(model)), model_spec(model)["encoder"])
    if x.is_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    return model(x)[..., :h, :w]


#: encoder families that run in bf16 autocast under ``precision: auto`` on a CPU with AMX-BF16
#: tiles (why: docs/decisions.md, section "Precision by encoder")
BF16_CPU_ENCODER_PREFIXES = ("vgg",)
#: encoder families that stay fp32 on CUDA under ``precision: auto``
#: (why: docs/decisions.md, section "Precision by encoder")
FP32_CUDA_ENCODER_PREFIXES = ("efficientnet", "timm-efficientnet")


@lru_cache(maxsize=1)
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU advertises AMX-BF16 tiles.

    Returns:
        True when a ``flags`` line of Linux ``/proc/cpuinfo`` holds ``amx_bf16``; False
        elsewhere or when the file cannot be read. Cached.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in text.splitlines())


def resolve_precision(precision: str, device: torch.device, encoder: str | None) -> str:
    """The precision a forward pass runs in: ``"bf16"`` (autocast) or ``"fp32"``.

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"``: bf16 on CUDA except the encoders of
            :data:`FP32_CUDA_ENCODER_PREFIXES`; on a CPU, bf16 where it has AMX-BF16 and the
            encoder is one of :data:`BF16_CPU_ENCODER_PREFIXES`, else fp32.
        device: where the model runs.
        encoder: the model's encoder name (None: unknown, fp32 on a CPU under ``auto``).

    Returns:
        ``"bf16"`` or ``"fp32"``.

    Raises:
        XLMError: for a precision outside :data:`xlm_core.registry.PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise XLMError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp32" if encoder is not None and encoder.startswith(FP32_CUDA_ENCODER_PREFIXES) else "bf16"
    if device.type == "cpu" and encoder is not None and encoder.startswith(BF16_CPU_ENCODER_PREFIXES):
        return "bf16" if cpu_has_amx_bf16() else "fp32"
    return "fp32"


def set_precision(model: torch.nn.Module, precision: str) -> None:
    """Make :func:`model_logits` run ``model`` in ``precision``.

    Args:
        model: the model; its ``xlm_precision`` attribute is set.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"``.

    Raises:
        XLMError: for a precision outside :data:`xlm_core.registry.PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise XLMError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    model.xlm_precision = precision


def model_precision(model: torch.nn.Module, device: torch.device) -> str:
    """What :func:`model_logits` runs ``model`` in on ``device``.

    Args:
        model: the model (its ``xlm_precision``, default ``"auto"``, and its encoder decide).
        device: where it runs.

    Returns:
        ``"bf16"`` or ``"fp32"`` (:func:`resolve_precision`).
    """
    spec = getattr(model, "xlm_spec", None) or {}
    return resolve_precision(getattr(model, "xlm_precision", "auto"), device, spec.get("encoder"))


def autocast_for(device: torch.device, model: torch.nn.Module | None = None):
    """bf16 autocast where :func:`model_precision` says bf16, a no-op context elsewhere.

    Args:
        device: where the forward pass runs.
        model: the model; None: bf16 on CUDA, fp32 elsewhere.

    Returns:
        A context manager: ``torch.autocast(device.type, dtype=torch.bfloat16)`` or
        ``contextlib.nullcontext()``.
    """
    if model is None:
        precision = "bf16" if device.type == "cuda" else "fp32"
    else:
        precision = model_precision(model, device)
    if precision == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def model_logits(model: torch.nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Logits in the model's precision (:func:`model_precision`) for grey images.

    Args:
        model: a model built by :func:`xlm_core.models.build_model`.
        images: ``(B, 1, H, W)`` grey images in [0, 1] (moved to ``device``).
        device: where the model runs.

    Returns:
        ``(B, L, H, W)`` float32 logits.
    """
    with autocast_for(device, model):
        logits = forward_padded(model, images.to(device, non_blocking=True))
    return logits.float()


@torch.no_grad()
def predict_split(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    grid_hw: tuple[int, int],
    loss_name: str,
    sigma: float,
    cache,
    device: torch.device,
    batch_size: int = 2,
    num_workers: int = 0,
) -> SplitPredictions:
    """Run ``model`` (eval mode) on ``samples`` resized to ``grid_hw`` and decode both ways.

    Args:
        model: a model built by :func:`xlm_core.models.build_model`, on ``device``.
        samples: the N samples to predict.
        grid_hw: ``(H, W)`` the images are resized to (the run's test size).
        loss_name: the loss the model trained with (picks the sub-pixel decoder).
        sigma: the training targets' sigma in grid px (the soft-argmax window).
        cache: a :class:`xlm_core.datasets.cache.PreprocessCache` (or None) for resized images.
        device: where the model runs.
        batch_size: images per forward pass.
        num_workers: DataLoader worker processes.

    Returns:
        :class:`SplitPredictions` with both decodings (loss-aware sub-pixel and integer argmax).
    """
    from xlm_core.losses import decode_for_loss

    dataset = HeatmapDataset(samples, grid_hw, sigma=1.0, cache=cache, augmenter=None)
    loader = make_loader(dataset, batch_size=max(1, batch_size), shuffle=False, num_workers=num_workers)
    model.eval()
    sub, arg = [], []
    for batch in loader:
        logits = model_logits(model, batch["image"], device)
        sub.append(decode_for_loss(loss_name, logits, sigma).detach().float().cpu().numpy())
        arg.append(decode_argmax(logits).detach().float().cpu().numpy())
    image_hws = [dataset.image_hw(i) for i in range(len(dataset))]
    return SplitPredictions.from_grid(samples, image_hws, grid_hw, np.concatenate(sub), np.concatenate(arg))


def mean_shape_of(samples: Sequence[Sample], image_hws: Sequence[tuple[int, int]]) -> np.ndarray:
    """Mean landmark shape of ``samples`` in normalised image coordinates.

    Args:
        samples: the N samples (usually a run's training part).
        image_hws: ``[(H, W)] * N`` their original image sizes.

    Returns:
        ``(L, 2)`` float64 (u, v) in [0, 1] (:func:`xlm_core.metrics.mean_shape_baseline`).
    """
    gt = np.stack([np.asarray(s.landmarks, dtype=np.float64) for s in samples])
    return mean_shape_baseline(normalise_landmarks(gt, image_hws))


def score_split(
    pred: SplitPredictions, lset: LandmarkSet, mean_shape_norm: np.ndarray | None
) -> dict[str, dict | None]:
    """Both protocols' SCOREs of one split, each beside the mean-shape baseline.

    Args:
        pred: the split's predictions.
        lset: the dataset (its scale, thresholds and name).
        mean_shape_norm: ``(L, 2)`` mean training shape in normalised coordinates; None: no
            ``mean_shape_mre``.

    Returns:
        ``{"clean": SCORE, "zhu": SCORE | None}``; ``zhu`` is None for a dataset outside
        head/hand/chest (it defines no unit there). Each SCORE carries ``mean_shape_mre`` when
        ``mean_shape_norm`` is given.
    """
    scores: dict[str, dict | None] = {}
    clean = evaluate_clean(pred.pred_px, pred.gt_px, lset.scale, lset.thresholds)
    shape_px = None
    if mean_shape_norm is not None:
        shape_px = place_mean_shape(mean_shape_norm, pred.image_hws)
        base = evaluate_clean(shape_px, pred.gt_px, lset.scale, lset.thresholds)
        clean["mean_shape_mre"] = base["mre"]
    scores["clean"] = clean
    if lset.name in ZHU_DATASETS:
        args = (pred.gt_px, pred.image_hws, pred.grid_hw, lset.name, lset.thresholds)
        units = {"wrist_pair": ZHU_WRIST_PAIR, **zhu_units(lset.scale)}
        zhu = evaluate_zhu(pred.grid_argmax, *args, **units)
        if shape_px is not None:  # the mean shape placed as a prediction, mapped as Zhu maps points
            shape_grid = np.stack([zhu_to_grid(p, hw, pred.grid_hw, lset.name, truth=False)
                                   for p, hw in zip(shape_px, pred.image_hws)])
            zhu["mean_shape_mre"] = evaluate_zhu(shape_grid, *args, **units)["mre"]
        scores["zhu"] = zhu
    else:
        scores["zhu"] = None
    return scores


def prediction_columns(
    pred: SplitPredictions, lset: LandmarkSet, split: str
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Landmarks and the extra columns of predictions.csv for one split.

    Args:
        pred: the split's predictions.
        lset: the dataset (its scale converts pixels to its unit).
        split: the split's name, written in the ``split`` column.

    Returns:
        ``(landmarks, columns)``: ``{id: (L, 2)}`` predictions in original pixels, and
        ``{"error_px": {id: (L,)}, "error": {id: (L,)}, "split": {id: str}}`` (radial error in
        original pixels and in the dataset's unit).
    """
    err_px = radial_errors(pred.pred_px, pred.gt_px)
    factors = np.asarray(lset.scale.factors(pred.gt_px), dtype=np.float64)
    err_unit = err_px * factors[:, None]
    landmarks = {i: p for i, p in zip(pred.ids, pred.pred_px)}
    columns = {
        "error_px": {i: e for i, e in zip(pred.ids, err_px)},
        "error": {i: e for i, e in zip(pred.ids, err_unit)},
        "split": {i: split for i in pred.ids},
    }
    return landmarks, columns


GRID_PREDICTIONS_NAME = "predictions_grid.npz"
GRID_FORMAT = 1


def write_grid_predictions(
    path: Path, parts: Sequence[tuple[SplitPredictions, str]], lset: LandmarkSet
) -> None:
    """Write ``predictions_grid.npz`` (atomic, no pickled objects): what re-scoring needs.

    Keys, for each evaluated ``<split>`` (``test``, ``heldout``): ``<split>_ids`` (N,) str,
    ``<split>_grid_argmax`` and ``<split>_grid_subpixel`` (N, L, 2) float32 (x, y) grid px,
    ``<split>_grid_hw`` (2,) int (H, W), ``<split>_image_hws`` (N, 2) int (H, W) originals,
    ``<split>_gt_px`` (N, L, 2) float64 (x, y) original px, ``<split>_errors_zhu`` (N, L)
    float64 in the dataset's zhu unit (absent for datasets the zhu protocol does not define);
    plus ``splits`` (the split names), ``dataset``, ``format`` and the dataset's scale
    (``scale_unit``, ``mm_per_px`` (NaN when none), ``wrist_pair`` 0-based ((-1, -1) when none),
    ``wrist_mm``) so the clean protocol can be recomputed in the run's own unit. A few kB.

    Args:
        path: the file to write.
        parts: ``(predictions, split name)`` per evaluated split.
        lset: the dataset (name and scale).
    """
    from xlm_core.metrics import errors_zhu

    arrays: dict[str, np.ndarray] = {
        "format": np.array(GRID_FORMAT),
        "dataset": np.array(str(lset.name)),
        "splits": np.array([split for _, split in parts], dtype=str),
        "scale_unit": np.array(str(lset.scale.unit)),
        "mm_per_px": np.array(np.nan if lset.scale.mm_per_px is None else float(lset.scale.mm_per_px)),
        "wrist_pair": np.asarray(lset.scale.wrist_pair if lset.scale.wrist_pair is not None else (-1, -1),
                                 dtype=np.int64),
        "wrist_mm": np.array(float(getattr(lset.scale, "wrist_mm", 50.0))),
    }
    for pred, split in parts:
        arrays[f"{split}_ids"] = np.array([str(i) for i in pred.ids], dtype=str)
        arrays[f"{split}_grid_argmax"] = np.asarray(pred.grid_argmax, dtype=np.float32)
        arrays[f"{split}_grid_subpixel"] = np.asarray(pred.grid_subpixel, dtype=np.float32)
        arrays[f"{split}_grid_hw"] = np.asarray(pred.grid_hw, dtype=np.int64)
        arrays[f"{split}_image_hws"] = np.asarray(pred.image_hws, dtype=np.int64).reshape(-1, 2)
        arrays[f"{split}_gt_px"] = np.asarray(pred.gt_px, dtype=np.float64)
        if lset.name in ZHU_DATASETS:
            err, _ = errors_zhu(pred.grid_argmax, pred.gt_px, pred.image_hws, pred.grid_hw,
                                lset.name, wrist_pair=ZHU_WRIST_PAIR,
                                **zhu_units(lset.scale))
            arrays[f"{split}_errors_zhu"] = err

    def _write(fh) -> None:
        np.savez_compressed(fh, **arrays)

    atomic_write(path, _write, mode="wb")


def write_predictions(path: Path, parts: Sequence[tuple[SplitPredictions, str]], lset: LandmarkSet) -> None:
    """Write predictions.csv and, beside it, ``predictions_grid.npz``.

    predictions.csv holds ``image_id,landmark,x,y,error_px,error,split`` for every evaluated
    split; the npz (:func:`write_grid_predictions`) holds the decoded grid coordinates both ways,
    so a run can be re-scored under any protocol without its model.

    Args:
        path: the CSV file to write; the npz goes in the same folder.
        parts: ``(predictions, split name)`` per evaluated split.
        lset: the dataset (landmark names, scale).

    Raises:
        XLMError: if an image id appears in two evaluated splits.
    """
    landmarks: dict[str, np.ndarray] = {}
    columns: dict[str, dict[str, Any]] = {"error_px": {}, "error": {}, "split": {}}
    for pred, split in parts:
        lm, cols = prediction_columns(pred, lset, split)
        clash = set(lm) & set(landmarks)
        if clash:
            raise XLMError(f"{path}: image ids in two evaluated splits: {sorted(clash)[:5]}")
        landmarks.update(lm)
        for name, values in cols.items():
            columns[name].update(values)
    write_landmark_csv(path, landmarks, extra_columns=columns)
    write_grid_predictions(Path(path).with_name(GRID_PREDICTIONS_NAME), parts, lset)


def evaluate_run(run_dir: str | Path, protocol: str = "clean", root: str | None = None,
                 device: str = "auto") -> dict:
    """Recompute the test SCORE of a finished (or at least checkpointed) run from its checkpoint.

    The checkpoint describes itself (dataset, root, sizes, loss, ...).

    Args:
        run_dir: the run directory holding ``checkpoint.pt``.
        protocol: ``"clean"`` or ``"zhu"``.
        root: the dataset root, overriding the one recorded in the checkpoint (a moved
            dataset); None keeps the recorded one.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... (:func:`xlm_core.checkpoints.resolve_device`).

    Returns:
        The SCORE dict of ``protocol`` on the test split (the held-out fold for a
        cross-validation run), with ``mean_shape_mre``.

    Raises:
        XLMError: for a missing or corrupt checkpoint, an unreadable configuration, an unknown
            protocol, or a protocol the dataset does not define.
    """
    from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint, resolve_device
    from xlm_core.config import RunConfig
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.samples import inference_batch_size, run_samples

    if protocol not in PROTOCOLS:
        raise XLMError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    run_dir = Path(run_dir)
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise XLMError(f"{path}: no checkpoint in run directory {run_dir} (train first)")
    ckpt = load_checkpoint(path)
    try:
        cfg = RunConfig.from_dict(dict(ckpt["config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise XLMError(f"{path}: the checkpoint's run configuration is unreadable ({exc})") from None
    if root is not None:
        cfg.root = str(root)
    dev = resolve_device(device)
    model = model_from_checkpoint(ckpt, path).to(dev)
    split = run_samples(cfg)
    preds = predict_split(model, split.test or split.heldout, tuple(ckpt["test_size"]), ckpt["loss"],
                          float(ckpt["sigma"]), PreprocessCache(), dev,
                          batch_size=inference_batch_size(cfg.batch_size, tuple(ckpt["test_size"])))
    mean_shape = mean_shape_of(split.train_part, image_hws_of(split.train_part))
    score = score_split(preds, split.lset, mean_shape)[protocol]
    if score is None:
        raise XLMError(f"protocol {protocol!r} is not defined for dataset {split.lset.name!r}")
    return score


def image_hws_of(samples: Sequence[Sample]) -> list[tuple[int, int]]:
    """Original image sizes of ``samples``, read from the image headers.

    Args:
        samples: the samples.

    Returns:
        ``[(H, W)]``, one per sample.
    """
    from xlm_core.imageio import read_image_size

    hws = []
    for sample in samples:
        w, h = read_image_size(sample.image)
        hws.append((h, w))
    return hws


def format_score(score: dict) -> str:
    """A SCORE as a short human-readable block (``xlm evaluate`` without ``--json``).

    Args:
        score: a SCORE dict (``protocol``, ``n_images``, ``n_landmarks``, ``mre``, ``mre_std``,
            ``sdr``, ``unit``, optionally ``mean_shape_mre``).

    Returns:
        Three lines: counts, MRE (with the baseline when present), SDR per threshold.
    """
    unit = score["unit"]
    lines = [
        f"protocol {score['protocol']}: {score['n_images']} images x {score['n_landmarks']} landmarks",
        f"MRE {score['mre']:.3f} {unit} (sd {score['mre_std']:.3f})"
        + (f"; mean-shape baseline {score['mean_shape_mre']:.3f} {unit}" if "mean_shape_mre" in score else ""),
        "SDR " + ", ".join(f"{k} {unit}: {v:.2f} %" for k, v in score["sdr"].items()),
    ]
    return "\n".join(lines)


__all__ = [
    "GRID_PREDICTIONS_NAME",
    "PROTOCOLS",
    "SplitPredictions",
    "evaluate_run",
    "forward_padded",
    "image_hws_of",
    "mean_shape_of",
    "model_logits",
    "predict_split",
    "score_split",
    "write_grid_predictions",
    "write_predictions",
]
