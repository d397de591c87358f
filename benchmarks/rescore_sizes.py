"""Does the test size's aspect change the error? Re-score finished runs at other test sizes.

The paper trains at 512x512 and tests the hand at 512x368 (the head at 512x416): at test time
the network sees a hand narrower than in training. This script takes finished run
directories, loads each checkpoint and scores the same images (the run's training images
and its headline split, clean protocol) at each ``--sizes`` grid, as MRE / mean-shape MRE::

    python benchmarks/rescore_sizes.py results/demo/runs/<id> ... --sizes 64x64,64x46

Scoring the training images too separates the two explanations of a larger test error:
over-fitting (training images fine, test images not) and the size change itself (both worse).
Nothing is written; the table goes to stdout (``--json`` for a file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rescore(run_dir: Path, sizes: list[tuple[int, int]]) -> list[dict]:
    import torch

    from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint
    from xlm_core.config import RunConfig
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.evaluation import image_hws_of, mean_shape_of, predict_split, score_split
    from xlm_core.metrics import baseline_ratio
    from xlm_core.samples import run_samples

    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = RunConfig.from_dict({**metrics["config"], "out": str(run_dir), "device": "cpu"})
    samples = run_samples(cfg)
    mean_shape = mean_shape_of(samples.train_part, image_hws_of(samples.train_part))
    model = model_from_checkpoint(load_checkpoint(run_dir / "checkpoint.pt"), run_dir / "checkpoint.pt")
    cache, device = PreprocessCache(), torch.device("cpu")
    headline = metrics["headline_split"]
    splits = {"fit": samples.fit, headline: samples.test if headline == "test" else samples.heldout}
    rows = []
    for size in sizes:
        row = {"run": run_dir.name, "arch": cfg.arch, "encoder": cfg.encoder, "dataset": samples.lset.name,
               "train_size": list(cfg.train_size), "test_size": list(size)}
        for name, split in splits.items():
            pred = predict_split(model, split, size, cfg.loss, cfg.sigma, cache, device, batch_size=int(cfg.batch_size))
            clean = score_split(pred, samples.lset, mean_shape)["clean"]
            row[f"{name}_ratio"] = baseline_ratio(clean)
        row["headline"] = headline
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="finished run directories (metrics.json + checkpoint.pt)")
    parser.add_argument("--sizes", default="64x64,64x46", help="test grids HxW, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = []
    print(f"{'run':<17} {'pair':<28} {'test HxW':>8} {'fit ratio':>9} {'headline ratio':>14}")
    for run in args.runs:
        for row in rescore(Path(run), sizes):
            rows.append(row)
            h, w = row["test_size"]
            print(f"{row['run']:<17} {row['arch'] + '/' + row['encoder']:<28} {f'{h}x{w}':>8} "
                  f"{row['fit_ratio']:>9.3f} {row[row['headline'] + '_ratio']:>14.3f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
