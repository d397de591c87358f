"""The fit loop of one run: data, optimiser, scheduler, early stopping, checkpoints, resume.

:func:`train_and_evaluate` is the whole run (``xlm train`` and the run notebook call it):

1. samples: the dataset's training split (optionally the first ``train_limit``); with
   ``folds``/``fold`` a deterministic k-fold split of it (``kfold_split``) whose held-out fold
   is scored separately; the early-stopping set is carved out of the *training* part
   (``carve_validation``, trap 4), never taken from a fold that is scored. Folds and the
   carve use split seed 0 whatever the run seed, so runs that differ only in architecture,
   transfer or seed are scored on the same images (paired comparisons).
2. model ``models.build_model`` (+ ``transfer.load_init`` for transfer, its report printed and
   stored); Adam (``lr``), ReduceLROnPlateau on the validation loss (factor 0.1, patience
   ``max(1, patience // 2)``), early stopping after ``patience`` epochs without a new best
   validation loss, at most ``epochs`` epochs. On CUDA: bf16 autocast and channels_last;
   on CPU: fp32 (bit-reproducible).
3. after every epoch, written atomically: ``checkpoint.pt`` when the validation loss improved
   (the best model, self-describing), ``history.csv``, and ``last.pt`` (everything needed to
   continue: model, optimiser, scheduler, early stopping, epoch, history, RNG states). A
   killed run started again with the same command continues after the last finished epoch
   and, on CPU, ends with exactly the numbers of an uninterrupted run: augmentation depends
   on (seed, epoch, index) and shuffling on (seed, epoch) only.
4. evaluation (:mod:`xlm_core.evaluation`) of the best checkpoint on the test split (and the
   held-out fold), ``predictions.csv``, and ``metrics.json`` last: its presence marks a
   finished run, which a new call returns at once. ``last.pt`` is then removed.
   A finished run scored with another decoder than its loss gets now
   (:func:`xlm_core.registry.decoder_is_current`) is scored again from its checkpoint, without
   training; metrics.json's ``trace_decoder`` keeps the decoder its history.csv was traced with.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlm_core import XLMError, __version__, pause_for_test
from xlm_core.checkpoints import (
    CHECKPOINT_NAME,
    _cpu_state,
    checkpoint_description,
    load_checkpoint,
    model_from_checkpoint,
    resolve_device,
    save_torch,
)
from xlm_core.config import RunConfig
from xlm_core.datasets.base import Sample
from xlm_core.evaluation import model_precision, set_precision
from xlm_core.io import atomic_write_json, atomic_write_text, exclusive_lock
from xlm_core.samples import RunSamples, fit_steps_per_epoch, inference_batch_size, run_samples

STATE_FORMAT = "xlm-train-state/1"
STATE_NAME = "last.pt"
HISTORY_NAME = "history.csv"
PREDICTIONS_NAME = "predictions.csv"
METRICS_NAME = "metrics.json"
TRAIN_LOCK_WAIT_S = 120.0
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")
# with ``trace_mre``: after every epoch, the clean-protocol MRE of the validation images and of
# the headline split (test, else held-out), each over its mean-shape MRE (``*_ratio``), and the
# seconds this scoring took (not in ``seconds``). Recorded only: the checkpoint is still chosen by
# the validation loss. It measures what a shorter budget would have given (benchmarks/demo_budget.py).
TRACE_COLUMNS = ("val_mre", "val_ratio", "test_mre", "test_ratio", "trace_seconds")
#: keys a complete metrics.json has (config.py documents the schema)
METRICS_KEYS = ("config", "dataset", "data_source", "unit", "mre", "mean_shape_mre", "test",
                "heldout", "transfer", "epochs_run", "best_epoch", "train_seconds")
PLATEAU_FACTOR = 0.1


# --------------------------------------------------------------------------- setup


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def progress_enabled() -> bool:
    """Progress bars: on for an interactive terminal; ``XLM_PROGRESS=0`` / ``1`` forces off / on."""
    env = os.environ.get("XLM_PROGRESS")
    if env is not None and env.strip() != "":
        return env.strip().lower() not in ("0", "false", "no", "off")
    return sys.stderr.isatty()


def log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- early stopping


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without a validation loss below the best so far."""

    patience: int
    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record epoch ``epoch``'s loss; True when it is a new best."""
        if value < self.best:
            self.best, self.best_epoch, self.bad_epochs = float(value), int(epoch), 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


# --------------------------------------------------------------------------- train state


def _rng_state(device: torch.device) -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
    }


def _set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda"):
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(obj: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        return tuple(_as_tuple(v) for v in obj)
    return obj


def read_history(path: Path) -> list[dict]:
    """history.csv back as :func:`write_history`'s rows (numbers; empty cells left out)."""
    with open(path, newline="") as fh:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(fh)]


def write_history(path: Path, history: list[dict]) -> None:
    """history.csv: one row per epoch (``epoch`` 1-based, losses, lr, seconds; the
    :data:`TRACE_COLUMNS` too when the rows have them)."""
    traced = any("val_ratio" in row for row in history)  # a resumed run may have turned it on
    columns = HISTORY_COLUMNS + (TRACE_COLUMNS if traced else ())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if k not in row else int(row[k]) if k == "epoch" else repr(float(row[k])))
                         for k in columns})
    atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- steps


def train_one_epoch(model, loader, loss_fn, optimiser, device: torch.device, bar=None,
                    step_scheduler=None, max_steps: int | None = None) -> float:
    """One pass over ``loader`` in train mode; returns the mean loss per batch.
    ``step_scheduler``: a learning-rate schedule stepped after every optimiser step;
    ``max_steps``: stop after this many optimiser steps (the last epoch of a ``steps`` run)."""
    from xlm_core.evaluation import model_logits

    model.train()
    total, count = 0.0, 0
    for batch in loader:
        if max_steps is not None and count >= max_steps:
            break
        target = batch["heatmaps"].to(device, non_blocking=True)
        try:
            logits = model_logits(model, batch["image"], device)
        except ValueError as exc:
            if "Expected more than 1 value per channel" not in str(exc):
                raise
            # trap 7: a batch of one image reaches a BatchNorm after global pooling
            raise XLMError(
                f"a training batch of {int(target.shape[0])} image(s) cannot pass the model's "
                f"BatchNorm layers in train mode ({len(loader.dataset)} training image(s) after "
                "carving the validation set): use more training images, a batch size they fill, "
                "or a larger --train-size"
            ) from None
        loss = loss_fn(logits, target)
        if not torch.isfinite(loss):
            raise XLMError(f"training diverged: loss is {float(loss)} (lower --lr?)")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step_scheduler is not None:
            step_scheduler.step()
        total += float(loss.detach())
        count += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total / count:.4g}", lr=f"{optimiser.param_groups[0]['lr']:.2g}")
    if count == 0:
        raise XLMError("the training loader produced no batch (fewer images than the batch size?)")
    return total / count


@torch.no_grad()
def recompute_batchnorm(model: torch.nn.Module, samples: list[Sample], size_hw: tuple[int, int],
                        cache, device: torch.device, batch_size: int = 8) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance for the model's current
    weights ("precise BN"): reset them, then average the batch statistics of one pass over
    ``samples`` (no augmentation, no gradient) with equal weight.

    During training the running statistics are an exponential average over the last few
    steps, taken while the weights moved; with small batches and a high learning rate they can
    lag the weights so far that eval-mode predictions are worse than the mean shape while the
    training loss is low. Evaluation uses the statistics this function sets.

    Args:
        model: the network (left in the train/eval mode it was in).
        samples: the images to average over (the run's fitted images).
        size_hw: the training grid (H, W).
        cache: the preprocessing cache.
        device: where the model runs.
        batch_size: images per forward pass (a last batch of one image is dropped: BatchNorm
            after global pooling needs two).

    Returns:
        The number of BatchNorm layers re-estimated (0: the model has none; nothing ran).
    """
    from xlm_core.evaluation import model_logits
    from xlm_core.torchdata import HeatmapDataset, make_loader

    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers or len(samples) < 2:
        return 0
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the pass
    was_training = model.training
    model.train()
    dataset = HeatmapDataset(samples, size_hw, 1.0, cache, None)
    size = min(batch_size, len(dataset))
    loader = make_loader(dataset, size, shuffle=False, drop_last=len(dataset) % size == 1)
    try:
        for batch in loader:
            model_logits(model, batch["image"], device)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return len(layers)


@torch.no_grad()
def mean_loss(model, loader, loss_fn, device: torch.device) -> float:
    """Mean loss per image over ``loader`` in eval mode (no augmentation)."""
    from xlm_core.evaluation import model_logits

    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        target = batch["heatmaps"].to(device, non_blocking=True)
        logits = model_logits(model, batch["image"], device)
        n = int(target.shape[0])
        total += float(loss_fn(logits, target)) * n
        count += n
    return total / max(count, 1)


# --------------------------------------------------------------------------- the run


def finished_metrics(out: Path, cfg: RunConfig) -> dict | None:
    """The metrics.json of a finished run of ``cfg`` in ``out``, or None if not finished (or
    scored with another decoder than its loss gets now, or by an older rule of a protocol:
    :func:`xlm_core.metrics.scores_are_current`).

    A finished run of *different* parameters in ``out`` is an XLMError (never overwritten).
    """
    from xlm_core.metrics import scores_are_current
    from xlm_core.registry import decoder_is_current

    metrics = _complete_metrics(out, cfg)
    current = metrics is not None and decoder_is_current(metrics) and scores_are_current(metrics)
    return metrics if current else None


def _complete_metrics(out: Path, cfg: RunConfig) -> dict | None:
    path = out / METRICS_NAME
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or any(k not in metrics for k in METRICS_KEYS):
        return None
    _check_same_run(out, metrics.get("config", {}), cfg)
    return metrics


def _check_same_run(out: Path, saved_config: dict, cfg: RunConfig) -> None:
    try:
        saved = RunConfig.from_dict(dict(saved_config)).normalised()
    except (TypeError, ValueError, XLMError) as exc:
        raise XLMError(f"{out}: holds a run with an unreadable configuration ({exc})") from None
    ours = cfg.normalised()
    if saved != ours:
        diff = sorted(k for k in set(saved) | set(ours) if saved.get(k) != ours.get(k))
        raise XLMError(
            f"{out}: holds a run with other parameters ({', '.join(diff)} differ); "
            "use another --out directory"
        )


def make_optimiser(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam. The fused kernel: the same update, measured 3x faster than the default on CPU
    (0.12 s against 0.37 s a step for UNet++/VGG19's 45 M parameters, one thread), where the
    optimiser step was a third of a training step."""
    return torch.optim.Adam(model.parameters(), lr=lr, fused=True)


def run_epochs(cfg: RunConfig, steps_per_epoch: int) -> int:
    """Epochs a run trains at most: ``cfg.epochs``, or with ``cfg.steps`` as many as those
    steps take (the last one cut short)."""
    return cfg.epochs if cfg.steps is None else math.ceil(cfg.steps / steps_per_epoch)


def make_scheduler(optimiser: torch.optim.Optimizer, cfg: RunConfig, steps_per_epoch: int):
    """The learning-rate schedule of ``cfg.lr_schedule``.

    ``plateau`` (the paper): x0.1 after ``patience // 2`` epochs without a better validation
    loss, stepped once an epoch. ``cosine``: linear warm-up over the first epoch (at most a
    tenth of the run), then cosine decay to 0 at the last step of ``cfg.epochs`` (or of
    ``cfg.steps``), stepped after every optimiser step (:func:`train_one_epoch`).
    """
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode="min", factor=PLATEAU_FACTOR, patience=max(1, cfg.patience // 2))
    if cfg.lr_schedule != "cosine":
        raise XLMError(f"unknown lr_schedule {cfg.lr_schedule!r}: plateau or cosine")
    total = max(1, cfg.steps or cfg.epochs * steps_per_epoch)
    warmup = max(1, min(steps_per_epoch, total // 10))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def train_and_evaluate(cfg: RunConfig) -> dict:
    """Train (or resume, or return a finished run), evaluate, and write the run directory.

    Writes ``cfg.out/{checkpoint.pt, history.csv, predictions.csv, metrics.json}`` and returns
    the metrics.json dict (schema in :mod:`xlm_core.config`).
    """
    out = Path(cfg.out)
    done = finished_metrics(out, cfg)
    if done is not None:
        log(f"{out}: finished run, returning its metrics (mre {done['mre']:.4g} {done['unit']})")
        # the resume state of a run killed between its metrics.json and the state's removal
        (out / STATE_NAME).unlink(missing_ok=True)
        return done
    # one trainer per run directory: a restarted run waits for a dying predecessor's last write
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out, timeout_s=TRAIN_LOCK_WAIT_S, what="this run's directory"):
        return _train_and_evaluate(cfg, out)


def _train_and_evaluate(cfg: RunConfig, out: Path) -> dict:
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.losses import get_loss
    from xlm_core.models import build_model
    from xlm_core.transfer import load_init

    done = finished_metrics(out, cfg)  # finished while we waited for the lock
    if done is not None:
        return done
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    samples = run_samples(cfg)
    lset = samples.lset
    test_size = tuple(int(v) for v in (cfg.test_size or lset.test_size))
    stale = _complete_metrics(out, cfg)
    if stale is not None and not (out / STATE_NAME).is_file() and (out / CHECKPOINT_NAME).is_file():
        from xlm_core.registry import decoder_name, scored_decoder

        log(f"{out}: finished run scored with decoder {scored_decoder(stale)}; scoring its "
            f"checkpoint again with {decoder_name(cfg.loss, cfg.sigma)} (no training)")
        return _evaluate(cfg, samples, test_size, PreprocessCache(), device, stale.get("transfer"),
                         read_history(out / HISTORY_NAME), EarlyStopping(patience=cfg.patience),
                         trace_decoder=stale.get("trace_decoder") or scored_decoder(stale),
                         start_weights=stale.get("encoder_weights_loaded"))
    train_size = cfg.train_size
    loss_fn = get_loss(cfg.loss)
    cache = PreprocessCache()

    model = build_model(cfg.arch, cfg.encoder, lset.n_landmarks, cfg.encoder_weights)
    weights_report = getattr(model, "encoder_weights_report", None)
    start_weights = None if weights_report is None else weights_report.as_dict()
    if weights_report is not None:
        log(str(weights_report))
    transfer = None
    if cfg.init:
        report = load_init(model, cfg.init, lset.n_landmarks)
        transfer = report.as_dict()
        log(str(report))
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    set_precision(model, cfg.precision)
    optimiser = make_optimiser(model, cfg.lr)
    steps_per_epoch = fit_steps_per_epoch(len(samples.fit), cfg.batch_size)
    scheduler = make_scheduler(optimiser, cfg, steps_per_epoch)
    epochs = run_epochs(cfg, steps_per_epoch)
    stopper = EarlyStopping(patience=cfg.patience)
    history: list[dict] = []
    start_epoch, training_done = 0, False
    description = checkpoint_description(cfg, samples, test_size)

    state_path = out / STATE_NAME
    if state_path.is_file():
        state = _load_state(state_path, cfg)
        if not state["training_done"]:
            model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["early_stopping"])
        history = [dict(row) for row in state["history"]]
        start_epoch, training_done = int(state["epoch"]), bool(state["training_done"])
        transfer = state.get("transfer", transfer)
        _set_rng_state(state["rng"], device)
        log(f"{out}: resuming after epoch {start_epoch}" + (" (training finished)" if training_done else ""))

    for image_id, reason in lset.dropped:
        log(f"skipped unusable image {image_id}: {reason}")
    counts = samples.counts()
    log(
        f"run {lset.name} ({lset.data_source}) {cfg.arch}/{cfg.encoder} on {device.type}: "
        f"fit {counts['fit']}, val {counts['val']}, "
        + (f"heldout {counts['heldout']}, " if counts["heldout"] is not None else "")
        + f"test {counts['test']} images; train {train_size[0]}x{train_size[1]}, "
        f"test {test_size[0]}x{test_size[1]} (HxW)"
    )

    if not training_done:
        from xlm_core.augment import default_augmenter
        from xlm_core.torchdata import HeatmapDataset, make_loader

        fit_set = HeatmapDataset(samples.fit, train_size, cfg.sigma, cache, default_augmenter(), seed=cfg.seed)
        monitor_samples = samples.val or samples.fit  # one training image: no carve possible
        val_set = HeatmapDataset(monitor_samples, train_size, cfg.sigma, cache, None)
        val_loader = make_loader(val_set, inference_batch_size(cfg.batch_size, train_size), shuffle=False,
                                 num_workers=cfg.num_workers)
        show = progress_enabled()
        last_state_s = time.monotonic()
        trace_shape = _train_mean_shape(samples) if cfg.trace_mre else None
        best_unsaved: dict | None = None  # the best weights since the last resume state
        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            loader = make_loader(fit_set, cfg.batch_size, shuffle=True, epoch=epoch, seed=cfg.seed,
                                 num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
            budget = None if cfg.steps is None else cfg.steps - epoch * steps_per_epoch
            bar = _bar(show, min(len(loader), budget or len(loader)), f"epoch {epoch + 1}/{epochs}")
            try:
                train_loss = train_one_epoch(model, loader, loss_fn, optimiser, device, bar,
                                             step_scheduler=scheduler if cfg.lr_schedule != "plateau" else None,
                                             max_steps=budget)
            finally:
                if bar is not None:
                    bar.close()
            val_loss = mean_loss(model, val_loader, loss_fn, device)
            if not math.isfinite(val_loss):
                raise XLMError(f"training diverged: validation loss is {val_loss} at epoch {epoch + 1} (lower --lr?)")
            lr = optimiser.param_groups[0]["lr"]
            if cfg.lr_schedule == "plateau":
                scheduler.step(val_loss)
            improved = stopper.step(val_loss, epoch + 1)
            history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                            "lr": lr, "seconds": time.perf_counter() - t0})
            if cfg.trace_mre:
                history[-1].update(_trace_scores(cfg, model, samples, monitor_samples, test_size,
                                                 cache, device, trace_shape))
            if improved:  # written with the next resume state, which it belongs to
                best_unsaved = {**description, "model": _cpu_state(model), "epoch": epoch + 1,
                                "val_loss": val_loss}
            write_history(out / HISTORY_NAME, history)
            training_done = stopper.should_stop or epoch + 1 >= epochs
            # the resume state is large (weights + Adam moments): at most every
            # checkpoint_every_s seconds, and always at the end of training. A resume from an
            # older state replays the epochs since then, to the same numbers on CPU. The best
            # weights go to disk at the same moments, not at every better epoch (a UNet++/
            # ResNeXt101 checkpoint is ~450 MB, most epochs of a cosine schedule are better).
            if training_done or time.monotonic() - last_state_s >= cfg.checkpoint_every_s:
                if best_unsaved is not None:
                    save_torch(out / CHECKPOINT_NAME, best_unsaved)
                    best_unsaved = None
                _save_state(state_path, cfg, model, optimiser, scheduler, stopper, history,
                            epoch + 1, training_done, transfer, device)
                last_state_s = time.monotonic()
                pause_for_test("checkpoint", out)
            log(f"epoch {epoch + 1}/{epochs}: train loss {train_loss:.5g}, val loss {val_loss:.5g}, "
                f"lr {lr:.2g}, {history[-1]['seconds']:.1f} s" + (" (best)" if improved else ""))
            if stopper.should_stop:
                log(f"early stopping: no better validation loss for {stopper.patience} epochs")
                break
        if not history:
            raise XLMError(f"{out}: no epoch was trained (epochs={epochs})")

    metrics = _evaluate(cfg, samples, test_size, cache, device, transfer, history, stopper,
                        start_weights=start_weights)
    pause_for_test("metrics", out)
    (out / STATE_NAME).unlink(missing_ok=True)
    return metrics


def _train_mean_shape(samples: RunSamples):
    from xlm_core.evaluation import image_hws_of, mean_shape_of

    return mean_shape_of(samples.train_part, image_hws_of(samples.train_part))


def _trace_scores(cfg, model, samples: RunSamples, val_samples, test_size, cache, device, mean_shape) -> dict:
    """``trace_mre``: the model as it is now, scored on the validation and headline splits
    (clean protocol, over the mean shape). The RNG states are restored afterwards, so the
    training goes on exactly as without the trace."""
    from xlm_core.evaluation import predict_split, score_split
    from xlm_core.metrics import baseline_ratio

    t0 = time.perf_counter()
    rng = _rng_state(device)
    row = {}
    if cfg.precise_bn:  # scored as the final evaluation scores: statistics for these weights
        import copy

        model = copy.deepcopy(model)
        recompute_batchnorm(model, samples.fit, cfg.train_size, cache, device)
    try:
        for name, split in (("val", val_samples), ("test", samples.test or samples.heldout)):
            pred = predict_split(model, split, test_size, cfg.loss, cfg.sigma, cache, device,
                                 batch_size=inference_batch_size(cfg.batch_size, test_size),
                                 num_workers=cfg.num_workers)
            clean = score_split(pred, samples.lset, mean_shape)["clean"]
            row[f"{name}_mre"] = clean["mre"]
            row[f"{name}_ratio"] = baseline_ratio(clean)
    finally:
        _set_rng_state(rng, device)
    row["trace_seconds"] = time.perf_counter() - t0
    return row


def _bar(show: bool, total: int, desc: str):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True)


def _save_state(path, cfg, model, optimiser, scheduler, stopper, history, epoch, training_done,
                transfer, device) -> None:
    """The resume state. Once training is done it holds no weights and no optimiser state (the
    best weights are in checkpoint.pt; only the evaluation is left): kilobytes, not ~3x the model."""
    weights = {} if training_done else {"model": _cpu_state(model), "optimiser": optimiser.state_dict(),
                                        "scheduler": scheduler.state_dict()}
    save_torch(path, {
        "format": STATE_FORMAT,
        "config": cfg.to_dict(),
        **weights,
        "early_stopping": stopper.state_dict(),
        "history": history,
        "epoch": int(epoch),
        "training_done": bool(training_done),
        "transfer": transfer,
        "rng": _rng_state(device),
        # the loader's shuffling generator is re-seeded from (seed, epoch) every epoch
        # (torchdata.epoch_generator), so it needs no saved state
    })


def _load_state(path: Path, cfg: RunConfig) -> dict:
    from xlm_core.weights import read_state_dict

    state = read_state_dict(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise XLMError(f"{path}: not an xlm training state (delete it to start the run afresh)")
    _check_same_run(path.parent, state.get("config", {}), cfg)
    return state


def _evaluate(cfg, samples: RunSamples, test_size, cache, device, transfer, history, stopper,
              trace_decoder: str | None = None, start_weights: dict | None = None) -> dict:
    """Score the best checkpoint; write predictions and metrics.json. ``trace_decoder``: the
    decoder history.csv's trace used, when not this evaluation's (a run scored again);
    ``start_weights``: the encoder weights file the run started from
    (:class:`xlm_core.weights.EncoderWeightsReport` as a dict: source, tensors, sha256)."""
    from xlm_core.evaluation import (
        predict_split,
        score_split,
        write_predictions,
    )
    from xlm_core.registry import decoder_name

    out = Path(cfg.out)
    lset = samples.lset
    ckpt = load_checkpoint(out / CHECKPOINT_NAME)
    model = model_from_checkpoint(ckpt, out / CHECKPOINT_NAME).to(device)
    set_precision(model, cfg.precision)
    if cfg.precise_bn and not ckpt.get("precise_bn"):
        # statistics for the chosen weights, kept in the checkpoint: what is scored is what
        # `xlm predict` and a transfer stage load (recomputed from scratch: the same each time)
        if recompute_batchnorm(model, samples.fit, cfg.train_size, cache, device):
            save_torch(out / CHECKPOINT_NAME, {**ckpt, "model": _cpu_state(model), "precise_bn": True})
        model.eval()
    mean_shape = _train_mean_shape(samples)
    parts, scores = [], {}
    for split, split_samples in (("test", samples.test), ("heldout", samples.heldout)):
        if not split_samples:
            scores[split] = None
            continue
        pred = predict_split(model, split_samples, test_size, cfg.loss, cfg.sigma, cache, device,
                             batch_size=inference_batch_size(cfg.batch_size, test_size),
                             num_workers=cfg.num_workers)
        scores[split] = score_split(pred, lset, mean_shape)
        parts.append((pred, split))
    write_predictions(out / PREDICTIONS_NAME, parts, lset)
    headline = scores["test"] or scores["heldout"]
    scale = lset.scale
    metrics = {
        "config": cfg.to_dict(),
        "dataset": lset.name,
        "data_source": lset.data_source,
        "unit": scale.unit,
        "scale": scale.describe(),
        "wrist_pair": None if scale.wrist_pair is None else [int(v) + 1 for v in scale.wrist_pair],
        "zhu_wrist_pair": [1, 5] if lset.name == "hand" else None,
        "thresholds": [float(t) for t in lset.thresholds],
        "mre": headline["clean"]["mre"],
        "mean_shape_mre": headline["clean"]["mean_shape_mre"],
        "decoder": decoder_name(cfg.loss, cfg.sigma),
        "trace_decoder": (trace_decoder or decoder_name(cfg.loss, cfg.sigma))
        if any("test_ratio" in row for row in history) else None,
        "headline_split": "test" if scores["test"] else "heldout",
        "test": scores["test"],
        "heldout": scores["heldout"],
        "transfer": transfer,
        "encoder_weights_loaded": start_weights,
        "epochs_run": len(history),
        "steps_run": _steps_run(cfg, samples, history),
        "split": _split_record(cfg, samples),
        "best_epoch": int(ckpt.get("epoch", stopper.best_epoch)),
        "best_val_loss": float(ckpt.get("val_loss", stopper.best)),
        "train_seconds": float(sum(row["seconds"] for row in history)),
        "splits": samples.counts(),
        "dropped": [{"image_id": i, "reason": r} for i, r in lset.dropped],
        "train_size": list(cfg.train_size),
        "test_size": [int(v) for v in test_size],
        "device": device.type,
        "augmentation": _augmentation_description(),
        "optimisation": {"optimiser": "adam", "lr": cfg.lr, "scheduler": "ReduceLROnPlateau" if cfg.lr_schedule == "plateau" else "warmup-cosine",
                         "plateau_factor": PLATEAU_FACTOR, "plateau_patience": max(1, cfg.patience // 2),
                         "early_stopping_patience": cfg.patience,
                         "precision": {"bf16": "bf16-autocast", "fp32": "fp32"}[model_precision(model, device)]},
        "xlm_version": __version__,
    }
    atomic_write_json(out / METRICS_NAME, metrics)
    clean = headline["clean"]
    log(f"{metrics['headline_split']}: MRE {clean['mre']:.4g} {clean['unit']} (mean shape "
        f"{clean['mean_shape_mre']:.4g}), SDR " + ", ".join(f"{k}: {v:.1f} %" for k, v in clean["sdr"].items()))
    return metrics


def _steps_run(cfg: RunConfig, samples: RunSamples, history: list[dict]) -> int:
    """Optimiser steps the recorded epochs took (the last one cut short by ``cfg.steps``)."""
    per_epoch = fit_steps_per_epoch(len(samples.fit), cfg.batch_size)
    steps = len(history) * per_epoch
    return steps if cfg.steps is None else min(steps, cfg.steps)


def _split_record(cfg: RunConfig, samples: RunSamples) -> dict:
    """Which images the run fitted, watched and scored: the fold and its ids (paired analyses and
    a reader can check that every image was scored once over the folds)."""
    return {"folds": cfg.folds, "fold": cfg.fold, "folds_over": cfg.folds_over if cfg.folds else None,
            "test_ids": [s.id for s in samples.test],
            "heldout_ids": None if samples.heldout is None else [s.id for s in samples.heldout]}


def _augmentation_description() -> dict:
    from xlm_core.augment import default_augmenter

    return default_augmenter().describe()


__all__ = [
    "EarlyStopping",
    "seed_everything",
    "train_and_evaluate",
]
