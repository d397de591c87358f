"""Which decoder turns a trained network's heatmaps into the best landmarks? Measured on
finished runs: each checkpoint's logits on its validation images (the early-stopping set,
which chooses) and on its headline split (test, else the held-out fold, which reports) are
decoded with the Newton step (argmax + a quadratic on the log-map, DARK) and with the window
soft-argmax at several radii (Newton where the window crosses the border), and scored with
the clean protocol as MRE / mean-shape MRE::

    python benchmarks/decoders.py results/demo/runs/*        # every finished run
    python benchmarks/decoders.py RUN ... --radii 1,3,5 --json rows.json

Prints one row per run, then per loss the median and worst ratio of each decoder and on how
many runs it beat the Newton step, on each split. Nothing is written unless ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def decode_all(run_dir: Path, radii: list[int]) -> dict | None:
    """Ratios ``{"val": {decoder: ratio}, "headline": {...}}`` of one finished run, or None."""
    import numpy as np
    import torch

    from xlm_core.checkpoints import load_checkpoint, model_from_checkpoint
    from xlm_core.config import RunConfig
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.evaluation import (
        SplitPredictions,
        image_hws_of,
        mean_shape_of,
        model_logits,
        score_split,
    )
    from xlm_core.heatmaps import decode_softargmax_local, decode_subpixel
    from xlm_core.losses import loss_activation
    from xlm_core.metrics import baseline_ratio
    from xlm_core.samples import run_samples
    from xlm_core.torchdata import HeatmapDataset, make_loader

    if not (run_dir / "metrics.json").is_file() or not (run_dir / "checkpoint.pt").is_file():
        return None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = RunConfig.from_dict({**metrics["config"], "out": str(run_dir), "device": "cpu"})
    samples = run_samples(cfg)
    mean_shape = mean_shape_of(samples.train_part, image_hws_of(samples.train_part))
    model = model_from_checkpoint(load_checkpoint(run_dir / "checkpoint.pt"), run_dir / "checkpoint.pt").eval()
    size = tuple(int(v) for v in metrics["test_size"])
    headline = samples.test if metrics["headline_split"] == "test" else samples.heldout
    decoders = {"newton": decode_subpixel}
    decoders.update({f"softargmax-r{r}": (lambda m, r=r: decode_softargmax_local(m, r)) for r in radii})
    row = {"run": run_dir.name, "arch": cfg.arch, "encoder": cfg.encoder, "dataset": samples.lset.name,
           "loss": cfg.loss, "lr": cfg.lr, "sigma": cfg.sigma}
    for name, split in (("val", samples.val), ("headline", headline)):
        data = HeatmapDataset(split, size, sigma=1.0, cache=PreprocessCache(), augmenter=None)
        with torch.no_grad():
            logits = torch.cat([model_logits(model, batch["image"], torch.device("cpu"))
                                for batch in make_loader(data, batch_size=4, shuffle=False, num_workers=0)])
        maps = loss_activation(cfg.loss, logits)
        hws = [data.image_hw(i) for i in range(len(data))]
        row[name] = {}
        for decoder, fn in decoders.items():
            grid = fn(maps).double().numpy()
            pred = SplitPredictions.from_grid(split, hws, size, grid, np.rint(grid))
            row[name][decoder] = baseline_ratio(score_split(pred, samples.lset, mean_shape)["clean"])
    return row


def summary(rows: list[dict]) -> list[str]:
    """Per loss and split: median / worst ratio of each decoder, runs where it beat newton."""
    lines = []
    for loss in sorted({r["loss"] for r in rows}):
        group = [r for r in rows if r["loss"] == loss]
        lines.append(f"{loss} ({len(group)} runs)")
        for split in ("val", "headline"):
            for decoder in group[0][split]:
                values = [r[split][decoder] for r in group]
                wins = sum(r[split][decoder] < r[split]["newton"] for r in group)
                lines.append(f"  {split:<8} {decoder:<15} median {statistics.median(values):.3f} "
                             f"worst {max(values):.3f} better than newton {wins}/{len(group)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (those without metrics.json + checkpoint.pt are skipped)")
    parser.add_argument("--radii", default="1,3,5", help="soft-argmax window radii, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    radii = [int(v) for v in args.radii.split(",")]
    rows = []
    for run in args.runs:
        row = decode_all(Path(run), radii)
        if row is None:
            continue
        rows.append(row)
        cells = " ".join(f"{d}={v:.3f}" for d, v in row["headline"].items())
        print(f"{row['run']} {row['arch']}/{row['encoder']} {row['dataset']} {row['loss']} lr {row['lr']:g}: "
              f"headline {cells}", flush=True)
    print("\n".join(summary(rows)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
