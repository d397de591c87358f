"""Per-sample cost of the data pipeline on hand-sized images: what the cache and the local
Gaussian window buy.

Writes ``--n`` hand phantoms (37 landmarks) as JPG at a realistic Digital Hand Atlas size
(``--size``, default 1600x2000 W x H; the DHA images are about 1500-2500 px tall) with
:func:`xlm_core.datasets.synth.write_phantoms`, loads them with the real hand loader, and
times, per sample, at the network grid ``--grid`` (default 512x512):

- (a) the training pipeline with a warm cache: ``PreprocessCache.load`` (the ``.npy`` of the
  resized image) + augmentation (:func:`xlm_core.augment.default_augmenter`, fresh
  parameters per call) + :func:`xlm_core.heatmaps.gaussian_heatmaps` (local window);
- (b) decoding and resizing the original each time (``read_image`` + ``resize_image``);
  and (b+) the same followed by augmentation and heatmaps: the pipeline without a cache;
- (c) local-window ``gaussian_heatmaps`` against ``full_image_heatmaps`` (an exponential
  over every pixel of every map), same landmarks, same sigma.

Each figure is the median over ``--reps`` passes over the ``n`` images, measured in one run
with the stages taking turns on each image, so load from other processes falls on all alike
(the components are also listed; ``full_image_heatmaps``, about half a second a call,
gets at most 2 passes). The cache lives in a temporary folder, so the warm
``.npy`` reads come from the OS page cache, as they do from the second epoch of training.

Example::

    python benchmarks/data_pipeline.py     # ~25 s on 2 CPU cores, most of it drawing phantoms
    python benchmarks/data_pipeline.py --n 2 --size 1200x1500 --reps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from xlm_core import XLMError
from xlm_core.augment import default_augmenter, sample_seed
from xlm_core.datasets import load_dataset
from xlm_core.datasets.cache import PreprocessCache
from xlm_core.datasets.synth import write_phantoms
from xlm_core.geometry import to_grid
from xlm_core.heatmaps import full_image_heatmaps, gaussian_heatmaps
from xlm_core.imageio import read_image, read_image_size, resize_image


def parse_hw(text: str, name: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)`` positive integers (as written on the command line)."""
    try:
        a, b = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise XLMError(f"{name} must look like 1600x2000 (W x H), got {text!r}") from None
    if a < 32 or b < 32:
        raise XLMError(f"{name} must be at least 32x32, got {text!r}")
    return a, b


def interleaved_medians_ms(
    stages: dict[str, Callable[[int, int], object]],
    n_items: int,
    reps: int,
    max_reps: dict[str, int] | None = None,
) -> dict[str, float]:
    """Median wall time in ms of each ``stage(item, rep)`` over ``reps`` passes over ``n_items``.

    The stages take turns on every item (rep -> item -> stage), so load from other processes
    on a shared machine falls on all of them alike. ``max_reps`` caps the passes of a slow stage.
    """
    max_reps = max_reps or {}
    times: dict[str, list[float]] = {name: [] for name in stages}
    for rep in range(reps):
        for item in range(n_items):
            for name, fn in stages.items():
                if rep >= max_reps.get(name, reps):
                    continue
                start = time.perf_counter()
                fn(item, rep)
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def run(
    n: int, size_wh: tuple[int, int], grid_hw: tuple[int, int], sigma: float, reps: int
) -> dict:
    """Write the phantoms, time every stage; returns ``{name: median ms per sample}``."""
    with tempfile.TemporaryDirectory(prefix="xlm-bench-") as tmp:
        start = time.perf_counter()
        root = write_phantoms("hand", Path(tmp) / "hand", n=n, seed=0, size_wh=size_wh)
        write_s = time.perf_counter() - start
        samples = load_dataset("hand", root).samples
        paths = [Path(s.image) for s in samples]
        image_hws = [tuple(reversed(read_image_size(p))) for p in paths]
        grid_xy = [
            np.asarray(to_grid(s.landmarks, hw, grid_hw)) for s, hw in zip(samples, image_hws)
        ]
        cache = PreprocessCache(Path(tmp) / "cache")
        for p in paths:  # fill the cache: training reads it from the second epoch on
            cache.load(p, grid_hw)
        augment = default_augmenter()
        augment(cache.load(paths[0], grid_hw), grid_xy[0], 0)  # build the albumentations pipeline

        def cached_pipeline(i: int, rep: int) -> None:
            _, xy = augment(cache.load(paths[i], grid_hw), grid_xy[i], sample_seed(0, rep, i))
            gaussian_heatmaps(xy, grid_hw, sigma)

        def uncached_decode(i: int, rep: int) -> None:
            resize_image(read_image(paths[i]), grid_hw)

        def uncached_pipeline(i: int, rep: int) -> None:
            image = resize_image(read_image(paths[i]), grid_hw)
            image, xy = augment(image, grid_xy[i], sample_seed(0, rep, i))
            gaussian_heatmaps(xy, grid_hw, sigma)

        warm = [cache.load(p, grid_hw) for p in paths]
        stages = {
            "cache.load (warm)": lambda i, r: cache.load(paths[i], grid_hw),
            "augment": lambda i, r: augment(warm[i], grid_xy[i], sample_seed(0, r, i)),
            "gaussian_heatmaps (local)": lambda i, r: gaussian_heatmaps(grid_xy[i], grid_hw, sigma),
            "full_image_heatmaps": lambda i, r: full_image_heatmaps(grid_xy[i], grid_hw, sigma),
            "(a) cached: load + augment + heatmaps": cached_pipeline,
            "(b) uncached: read_image + resize": uncached_decode,
            "(b+) uncached + augment + heatmaps": uncached_pipeline,
        }
        # full_image_heatmaps takes about half a second a call: at most 2 passes
        times = interleaved_medians_ms(stages, n, reps, max_reps={"full_image_heatmaps": 2})
    return {"times_ms": times, "write_s": write_s, "n_landmarks": int(grid_xy[0].shape[0])}


def ratios(times_ms: dict[str, float]) -> dict[str, float]:
    """The three speed-ups of the table from the per-stage medians of :func:`run`."""
    cached = times_ms["(a) cached: load + augment + heatmaps"]
    return {
        "(b) decode+resize / (a) cached pipeline":
            times_ms["(b) uncached: read_image + resize"] / cached,
        "(b+) uncached pipeline / (a) cached pipeline":
            times_ms["(b+) uncached + augment + heatmaps"] / cached,
        "(c) full_image_heatmaps / local window":
            times_ms["full_image_heatmaps"] / times_ms["gaussian_heatmaps (local)"],
    }


def format_table(result: dict, n: int, size_wh: tuple[int, int], grid_hw: tuple[int, int],
                 sigma: float, reps: int) -> str:
    """The timings and the three ratios as a plain-text table."""
    t = result["times_ms"]
    header = (
        f"hand phantoms: {n} JPG images of {size_wh[0]}x{size_wh[1]} px (W x H),"
        f" {result['n_landmarks']} landmarks, grid {grid_hw[0]}x{grid_hw[1]} (H x W),"
        f" sigma {sigma:g} grid px; median of {reps} passes"
    )
    lines = [
        header,
        "",
        f"{'stage (per sample)':<42} {'median ms':>10}",
        f"{'-' * 42} {'-' * 10}",
    ]
    lines += [f"{name:<42} {ms:>10.2f}" for name, ms in t.items()]
    lines += ["", f"{'ratio':<46} {'x':>6}", f"{'-' * 46} {'-' * 6}"]
    lines += [f"{name:<46} {value:>6.1f}" for name, value in ratios(t).items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3, help="number of phantom images (default 3)")
    parser.add_argument(
        "--size", default="1600x2000", help="phantom size W x H (default 1600x2000)"
    )
    parser.add_argument("--grid", default="512x512", help="network grid W x H (default 512x512)")
    parser.add_argument(
        "--sigma", type=float, default=2.0, help="Gaussian sigma, grid px (default 2)"
    )
    parser.add_argument("--reps", type=int, default=5, help="passes over the images (default 5)")
    args = parser.parse_args(argv)
    try:
        if args.n < 1 or args.reps < 1:
            raise XLMError("--n and --reps must be at least 1")
        size_wh = parse_hw(args.size, "--size")
        grid_w, grid_h = parse_hw(args.grid, "--grid")
        grid_hw = (grid_h, grid_w)
        result = run(args.n, size_wh, grid_hw, args.sigma, args.reps)
    except XLMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_table(result, args.n, size_wh, grid_hw, args.sigma, args.reps))
    print(f"\n(writing the phantoms took {result['write_s']:.1f} s, not counted above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
