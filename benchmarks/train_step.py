"""Training-step cost per architecture/encoder, and data loading against it.

For each (arch, encoder) pair: the median wall time of one training step (forward,
loss, backward, Adam step) over ``--steps`` steps after ``--warmup`` steps, and the peak
memory of training (model + gradients + Adam state + activations). Then the time the
data pipeline takes to produce one batch, as a ratio to each step time (> 1: the loader,
not the model, limits training; use DataLoader workers). On CUDA, each pair is also run
with bf16 autocast, and with bf16 autocast + channels_last, and the speed-ups over fp32
are printed (ratios measured in the same run); on a CPU with AMX-BF16 tiles as well.

Peak memory. CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus what was
allocated before the model was built. CPU: each pair runs in a fresh Python process (the
allocator keeps freed memory, so a second model in one process would not raise the
resident set); its peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``
after the imports, Linux) minus the resident set before the model was built; without
``/proc``, the growth of ``ru_maxrss`` (marked ``>=``, a lower bound).

Data loading. When ``xlm_core.datasets.synth`` exists, a phantom dataset is written
with ``xlm data synth`` and read through the training pipeline (``HeatmapDataset``:
preprocessing cache, augmentation, Gaussian targets; ``make_loader``), timed after one
warm-up pass so the cache is filled (steady state of training). Otherwise random grey
arrays stored as ``.npy`` go through the same augmentation and Gaussian targets (the
cost of a cache hit; no image decoding). The table header says which was used.

Examples::

    python benchmarks/train_step.py                       # CPU, short (< 2 min)
    python benchmarks/train_step.py --device cuda --size 512x512 --pairs paper --steps 20
    python benchmarks/train_step.py --pairs unetplusplus:vgg19,unet:efficientnet-b7
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from xlm_core import XLMError
from xlm_core.heatmaps import gaussian_heatmaps
from xlm_core.losses import get_loss
from xlm_core.models import build_model, check_combination, to_model_input
from xlm_core.registry import PAPER_ENCODERS
from xlm_core.training import make_optimiser

PAPER_PAIRS = [
    (arch, enc)
    for arch in ("unet", "unetplusplus", "deeplabv3")
    for enc in PAPER_ENCODERS
    if not (arch == "deeplabv3" and enc.startswith("vgg"))
]
# The default CPU run (short): the paper's U-Net++/VGG19 and one pair per other architecture
# and encoder; ``--pairs paper`` runs all 8 (minutes on a small CPU).
CPU_DEFAULT_PAIRS = [
    ("unetplusplus", "vgg19"),
    ("unet", "efficientnet-b7"),
    ("deeplabv3", "resnext101_32x8d"),
]


# --------------------------------------------------------------------------- memory


def _proc_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return _proc_kib("VmHWM") is not None
    except OSError:
        return False


class PeakMemory:
    """Peak memory (MiB) of what runs between ``start()`` and ``stop()`` on ``device``."""

    def __init__(self, device: torch.device):
        self.device = device
        self.lower_bound = False

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        elif _reset_peak_rss():
            self.base = _proc_kib("VmRSS") * 1024
        else:
            import resource

            self.lower_bound = True
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def stop(self) -> float:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        elif not self.lower_bound:
            peak = _proc_kib("VmHWM") * 1024
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0.0, (peak - self.base) / 2**20)


# --------------------------------------------------------------------------- one step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(batch: int, size_hw: tuple[int, int], n_landmarks: int, encoder: str, seed: int):
    """A model input (B, 3, H, W) and Gaussian targets (B, L, H, W) on the CPU."""
    rng = np.random.default_rng(seed)
    grey = torch.from_numpy(rng.random((batch, 1, *size_hw), dtype=np.float32))
    xy = rng.uniform([0, 0], [size_hw[1] - 1, size_hw[0] - 1], size=(batch, n_landmarks, 2))
    return to_model_input(grey, encoder), torch.from_numpy(gaussian_heatmaps(xy, size_hw, 2.0))


def time_steps(
    model: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    loss_name: str,
    steps: int,
    warmup: int,
    autocast_dtype: torch.dtype | None = None,
) -> list[float]:
    """Seconds of each of ``steps`` training steps (after ``warmup`` untimed ones)."""
    device = x.device
    loss_fn = get_loss(loss_name)
    optimiser = make_optimiser(model, 1e-4)
    model.train()
    times = []
    for i in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(x)
        loss = loss_fn(logits.float(), target)
        loss.backward()
        optimiser.step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


# (tag, autocast dtype, memory format); the bf16 ones run on CUDA only
_VARIANTS = [
    ("fp32", None, torch.contiguous_format),
    ("bf16", torch.bfloat16, torch.contiguous_format),
    ("bf16_cl", torch.bfloat16, torch.channels_last),
]


def bf16_here(device: torch.device, args) -> bool:
    """bf16 variants run on CUDA, and on a CPU with AMX-BF16 tiles (xlm_core.evaluation), unless
    ``--no-bf16``: the ratios behind ``precision: auto`` (evaluation.BF16_CPU_ENCODER_PREFIXES)."""
    from xlm_core.evaluation import cpu_has_amx_bf16

    return not args.no_bf16 and (device.type == "cuda" or (device.type == "cpu" and cpu_has_amx_bf16()))


def measure_pair(arch: str, encoder: str, args, device: torch.device) -> dict:
    """Median step time (s), peak memory (MiB) and parameter count of one pair."""
    row = {"arch": arch, "encoder": encoder}
    x_cpu, t_cpu = _batch(args.batch, args.size, args.landmarks, encoder, args.seed)
    variants = [
        v for v in _VARIANTS if v[0] == "fp32" or bf16_here(device, args)
    ]
    for tag, dtype, memory_format in variants:
        torch.manual_seed(args.seed)
        memory = PeakMemory(device)
        memory.start()
        model = build_model(arch, encoder, args.landmarks).to(device, memory_format=memory_format)
        x = x_cpu.to(device).contiguous(memory_format=memory_format)
        target = t_cpu.to(device)
        times = time_steps(model, x, target, args.loss, args.steps, args.warmup, dtype)
        row[f"{tag}_step_s"] = statistics.median(times)
        row[f"{tag}_peak_mib"] = memory.stop()
        row["lower_bound"] = memory.lower_bound
        row["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
        del model, x, target
        gc.collect()
    return row


def measure_pair_isolated(arch: str, encoder: str, argv: list[str]) -> dict:
    """:func:`measure_pair` in a fresh process (CPU peak memory needs one); its JSON row."""
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--one", f"{arch}:{encoder}"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    rows = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not rows:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise XLMError(
            f"measuring {arch}/{encoder} failed (exit {done.returncode}): {' | '.join(tail)}"
        )
    return json.loads(rows[-1])


# --------------------------------------------------------------------------- data loading


def _phantom_loader(args, folder: Path):
    """The training pipeline over a phantom dataset written by ``xlm data synth``."""
    from xlm_core.augment import default_augmenter
    from xlm_core.cli import main as xlm_main
    from xlm_core.datasets import load_dataset
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.torchdata import HeatmapDataset, make_loader

    root = folder / args.dataset
    status = xlm_main(
        ["data", "synth", args.dataset, str(root), "--n", str(args.load_images), "--seed", "0"]
    )
    if status:
        raise XLMError(f"xlm data synth {args.dataset} exited with {status}")
    lset = load_dataset(args.dataset, root)
    dataset = HeatmapDataset(
        lset.samples,
        tuple(args.size),
        2.0,
        PreprocessCache(folder / "cache"),
        default_augmenter(),
        seed=0,
    )
    source = f"phantom {args.dataset} ({len(lset.samples)} images, {lset.n_landmarks} landmarks, xlm data synth)"
    return (
        lambda: make_loader(dataset, args.batch, shuffle=True, num_workers=args.workers)
    ), source


class _RandomArrays(torch.utils.data.Dataset):
    """Random grey .npy arrays at the training size through the training preprocessing."""

    def __init__(self, folder: Path, n: int, size_hw: tuple[int, int], n_landmarks: int):
        from xlm_core.augment import default_augmenter

        rng = np.random.default_rng(0)
        self.paths = []
        for i in range(n):
            path = folder / f"{i:04d}.npy"
            np.save(path, rng.random(size_hw, dtype=np.float32))
            self.paths.append(path)
        self.size_hw = size_hw
        self.landmarks = rng.uniform(
            [0, 0], [size_hw[1] - 1, size_hw[0] - 1], size=(n, n_landmarks, 2)
        )
        self.augmenter = default_augmenter()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        image = np.load(self.paths[i])  # what a preprocessing-cache hit costs
        image, xy = self.augmenter(image, self.landmarks[i], seed=i)
        heatmaps = gaussian_heatmaps(xy, self.size_hw, 2.0)
        return {"image": torch.tensor(image)[None], "heatmaps": torch.from_numpy(heatmaps)}


def _random_loader(args, folder: Path):
    dataset = _RandomArrays(folder, args.load_images, tuple(args.size), args.landmarks)
    source = (
        f"random arrays ({args.load_images} .npy, {args.landmarks} landmarks; "
        "no xlm_core.datasets.synth: no image decoding)"
    )

    def loader():
        return torch.utils.data.DataLoader(
            dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers, drop_last=True
        )

    return loader, source


def measure_loading(args, folder: Path) -> tuple[float, str]:
    """Seconds per batch of the data pipeline (steady state: after one warm-up pass)."""
    factory, source = None, ""
    if importlib.util.find_spec("xlm_core.datasets.synth") is not None:
        try:
            factory, source = _phantom_loader(args, folder)
        except Exception as exc:  # noqa: BLE001 - a benchmark falls back and says why
            print(
                f"# phantom loader unavailable ({type(exc).__name__}: {exc}); using random arrays",
                file=sys.stderr,
            )
    if factory is None:
        factory, source = _random_loader(args, folder)
    for _ in factory():  # warm-up: fills the preprocessing cache
        pass
    start, batches = time.perf_counter(), 0
    for _ in range(args.load_epochs):
        for _ in factory():
            batches += 1
    return (time.perf_counter() - start) / max(batches, 1), source


# --------------------------------------------------------------------------- command line


def _size(text: str) -> tuple[int, int]:
    found = re.fullmatch(r"(\d+)[x,](\d+)", text.strip())
    if not found:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 64x64, got {text!r}")
    return int(found.group(1)), int(found.group(2))


def parse_pairs(text: str, device: torch.device) -> list[tuple[str, str]]:
    """``paper`` | ``default`` | ``arch:encoder,arch:encoder,...``."""
    if text == "paper":
        return list(PAPER_PAIRS)
    if text == "default":
        return list(PAPER_PAIRS) if device.type == "cuda" else list(CPU_DEFAULT_PAIRS)
    pairs = []
    for item in text.split(","):
        arch, sep, encoder = item.strip().partition(":")
        if not sep:
            raise XLMError(f"--pairs item {item!r} is not arch:encoder")
        check_combination(arch, encoder)
        pairs.append((arch, encoder))
    return pairs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument(
        "--pairs",
        default="default",
        help="'default' (CPU: a short subset; CUDA: the paper's 8), 'paper', or arch:encoder,...",
    )
    p.add_argument("--size", type=_size, default=(64, 64), help="input HxW (default 64x64)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--landmarks", type=int, default=19)
    p.add_argument("--loss", default="mse")
    p.add_argument("--steps", type=int, default=3, help="timed steps per pair (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-bf16", action="store_true", help="skip the bf16 and bf16 + channels_last runs (CUDA, AMX CPUs)"
    )
    p.add_argument("--dataset", default="hand", help="phantom dataset for the loading measure")
    p.add_argument("--load-images", type=int, default=8)
    p.add_argument("--load-epochs", type=int, default=2)
    p.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers for the loading measure"
    )
    p.add_argument("--skip-loading", action="store_true")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="CPU: measure every pair in this process (faster; peak memory then unreliable)",
    )
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one pair, JSON out
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available", file=sys.stderr)
        return 1
    if args.one:  # a child process of measure_pair_isolated
        arch, _, encoder = args.one.partition(":")
        print(json.dumps(measure_pair(arch, encoder, args, device)))
        return 0
    try:
        pairs = parse_pairs(args.pairs, device)
    except XLMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    h, w = args.size
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"# train step: batch {args.batch} x 3 x {h} x {w}, {args.landmarks} landmarks, loss {args.loss}, "
        f"Adam; median of {args.steps} steps after {args.warmup} warm-up; {name}; torch {torch.__version__}"
    )

    isolate = device.type == "cpu" and not args.in_process
    child_argv = list(argv if argv is not None else sys.argv[1:])
    rows = []
    for arch, encoder in pairs:
        try:
            if isolate:
                rows.append(measure_pair_isolated(arch, encoder, child_argv))
            else:
                rows.append(measure_pair(arch, encoder, args, device))
        except XLMError as exc:
            print(f"# {arch}/{encoder}: skipped: {exc}")
        print(f"# measured {arch}/{encoder}", file=sys.stderr, flush=True)

    load_s, source = (float("nan"), "not measured")
    if not args.skip_loading:
        with tempfile.TemporaryDirectory(prefix="xlm-bench-") as folder:
            try:
                load_s, source = measure_loading(args, Path(folder))
            except Exception as exc:  # noqa: BLE001 - the step table is still worth printing
                source = f"not measured ({type(exc).__name__}: {exc})"
    if not math.isnan(load_s):
        print(
            f"# data loading: {load_s * 1e3:.1f} ms per batch of {args.batch} "
            f"({args.workers} workers); {source}"
        )
    else:
        print(f"# data loading: {source}")

    cuda = bf16_here(device, args)  # the bf16 columns (CUDA, or a CPU with AMX-BF16)
    header = f"{'arch':<13} {'encoder':<17} {'params_M':>8} {'step_ms':>9} {'peak_MiB':>9} {'load/step':>9}"
    if cuda:
        for tag in ("bf16", "bf16cl"):
            header += f" {tag + '_ms':>9} {tag + '_MiB':>10} {'fp32/' + tag:>11}"
    print(header)
    for r in rows:
        peak = ("≥" if r["lower_bound"] else "") + f"{r['fp32_peak_mib']:.0f}"
        line = (
            f"{r['arch']:<13} {r['encoder']:<17} {r['params_m']:>8.1f} {r['fp32_step_s'] * 1e3:>9.1f} "
            f"{peak:>9} {load_s / r['fp32_step_s']:>9.3f}".replace("nan", "  -")
        )
        if cuda:
            for tag in ("bf16", "bf16_cl"):
                line += (
                    f" {r[tag + '_step_s'] * 1e3:>9.1f} {r[tag + '_peak_mib']:>10.0f}"
                    f" {r['fp32_step_s'] / r[tag + '_step_s']:>11.2f}"
                )
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
