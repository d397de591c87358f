"""The window soft-argmax at the grid's border: which rule decodes best there? Measured on
finished spatial_ce runs. Each checkpoint's softmax maps are decoded with the window mean
(radius from the run's sigma) and, where the window would cross the border, each rule of
:data:`xlm_core.heatmaps.BORDER_RULES`: ``newton`` (the Newton step instead), ``clipped`` (the
mean over the part of the window inside the grid) and ``symmetric`` (per axis the largest
window centred on the argmax that fits). Only the landmarks whose argmax lies within the
radius of the border differ; the script scores those (clean protocol, the dataset's unit)::

    python benchmarks/border_decoders.py results/demo/runs/*          # every finished spatial_ce run
    python benchmarks/border_decoders.py RUN ... --root OTHER_PHANTOMS    # score on another set

``--root``: images the models never saw (a phantom set drawn with another seed); its training
part selects, its test split reports. Without it: the run's early-stopping set selects and its
headline split reports. Prints per run and split the number of border landmarks, their MRE
under each rule and on how many the rule beat ``newton``; then the pooled figures. Nothing is
written unless ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def border_errors(run_dir: Path, root: str | None) -> dict | None:
    """Per split: errors ``{rule: (n_border,)}`` of the border landmarks, and the whole split's
    MRE / mean-shape ratio per rule. None for a run that is not a finished spatial_ce run."""
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
    from xlm_core.heatmaps import BORDER_RULES, decode_argmax, decode_softargmax_local
    from xlm_core.losses import loss_activation
    from xlm_core.metrics import baseline_ratio, errors_clean
    from xlm_core.registry import softargmax_radius
    from xlm_core.samples import run_samples
    from xlm_core.torchdata import HeatmapDataset, make_loader

    if not (run_dir / "metrics.json").is_file() or not (run_dir / "checkpoint.pt").is_file():
        return None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if metrics["config"].get("loss") != "spatial_ce":
        return None
    cfg = RunConfig.from_dict({**metrics["config"], "out": str(run_dir), "device": "cpu"})
    own = run_samples(cfg)
    mean_shape = mean_shape_of(own.train_part, image_hws_of(own.train_part))
    if root is not None:
        cfg.root = str(root)
        other = run_samples(cfg)
        splits = {"select": list(other.train_part) + list(other.val), "report": list(other.test)}
        lset = other.lset
    else:
        headline = own.test if metrics["headline_split"] == "test" else own.heldout
        splits = {"select": list(own.val), "report": list(headline)}
        lset = own.lset
    model = model_from_checkpoint(load_checkpoint(run_dir / "checkpoint.pt"), run_dir / "checkpoint.pt").eval()
    size = tuple(int(v) for v in metrics["test_size"])
    radius = softargmax_radius(float(cfg.sigma))
    row = {"run": run_dir.name, "arch": cfg.arch, "encoder": cfg.encoder, "dataset": lset.name,
           "radius": radius, "root": str(root or cfg.root)}
    for name, samples in splits.items():
        data = HeatmapDataset(samples, size, sigma=1.0, cache=PreprocessCache(), augmenter=None)
        with torch.no_grad():
            logits = torch.cat([model_logits(model, batch["image"], torch.device("cpu"))
                                for batch in make_loader(data, batch_size=4, shuffle=False, num_workers=0)])
        maps = loss_activation(cfg.loss, logits).double()
        hws = [data.image_hw(i) for i in range(len(data))]
        arg = decode_argmax(maps).numpy()
        h, w = size
        near = ((arg[..., 0] < radius) | (arg[..., 0] > w - 1 - radius)
                | (arg[..., 1] < radius) | (arg[..., 1] > h - 1 - radius))
        out = {"n_images": len(samples), "n_landmarks": int(near.size), "n_border": int(near.sum()),
               "border_errors": {}, "ratio": {}, "mre": {}}
        for rule in BORDER_RULES:
            grid = decode_softargmax_local(maps, radius, border=rule).numpy()
            pred = SplitPredictions.from_grid(samples, hws, size, grid, np.rint(grid))
            err = errors_clean(pred.pred_px, pred.gt_px, lset.scale)
            out["border_errors"][rule] = err[near].tolist()
            score = score_split(pred, lset, mean_shape)["clean"]
            out["mre"][rule] = score["mre"]
            out["ratio"][rule] = baseline_ratio(score)
        row[name] = out
    return row


def summary(rows: list[dict]) -> list[str]:
    """Pooled over runs, per split: border landmarks, their MRE per rule, wins over newton."""
    import numpy as np

    lines = []
    for split in ("select", "report"):
        pooled: dict[str, list[float]] = {}
        for r in rows:
            for rule, errs in r[split]["border_errors"].items():
                pooled.setdefault(rule, []).extend(errs)
        n = len(pooled.get("newton", []))
        if not n:
            lines.append(f"{split}: no border landmark")
            continue
        base = np.asarray(pooled["newton"])
        parts = []
        for rule, errs in pooled.items():
            e = np.asarray(errs)
            wins = int((e < base - 1e-12).sum())
            losses = int((e > base + 1e-12).sum())
            parts.append(f"{rule} {e.mean():.4f} (median {np.median(e):.4f}; better/worse than "
                         f"newton on {wins}/{losses})")
        lines.append(f"{split}: {n} border landmarks, MRE " + "; ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories (finished spatial_ce runs)")
    parser.add_argument("--root", help="score on this dataset root instead (images never seen)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    rows = []
    for run in args.runs:
        row = border_errors(Path(run), args.root)
        if row is None:
            continue
        rows.append(row)
        for split in ("select", "report"):
            s = row[split]
            mres = ", ".join(f"{k} {sum(v) / len(v):.4f}" if v else f"{k} -"
                             for k, v in s["border_errors"].items())
            ratios = ", ".join(f"{k} {v:.4f}" for k, v in s["ratio"].items())
            print(f"{row['run']} {row['arch']}/{row['encoder']} {row['dataset']} r{row['radius']} {split}: "
                  f"{s['n_border']} of {s['n_landmarks']} landmarks at the border, their MRE: {mres}; "
                  f"split ratio to mean shape: {ratios}")
    if not rows:
        print("no finished spatial_ce run among the arguments", file=sys.stderr)
        return 1
    for line in summary(rows):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
