"""How much training the demo needs: steps to the quality floor, and minutes against MRE ratio.

The demo study trains from random weights on two CPU cores, so every run must learn within
a few hundred steps or the tables it feeds are noise. The quality floor (issue "Models that
learn"): every run's test MRE <= 0.35 x the mean-shape baseline's MRE on the same images.

Three modes:

``steps``: an in-process training loop over the functions a run uses (``run_samples``,
``HeatmapDataset`` with the default augmentation, ``build_model``, ``get_loss``, Adam at a
constant learning rate, ``predict_split`` + ``score_split`` on the test split) that scores
the model every ``--eval-every`` steps and stops at the first score under the floor. It
prints, per (anatomy, arch/encoder, loss, lr), the *steps* to the floor (steps, not
seconds: the machine is shared) and the ratio curve. Written to ``--out`` as JSON::

    python benchmarks/demo_budget.py steps --anatomies head,hand,chest --losses spatial_ce,mse \\
        --lrs 1e-3 --pairs unetplusplus:vgg19 --max-steps 300 --threads 1 --out steps.json

``project``: the demo grid's cost at a few step budgets (worker-seconds from the measured
seconds per step of every pair, :data:`STEP_S_64`, and the grid's run counts) beside the
ratio the ``steps`` curves reached by then: a projection, labelled as such::

    python benchmarks/demo_budget.py project steps.json --budgets 60,100,150,200,300

``curve``: the measured trade-off of the whole demo grid. Reads finished studies (``results/<name>``,
each with ``study.json`` and ``runs/*/metrics.json``; make them with ``xlm study run PATH``
on profiles that differ only in their budget) and prints per study: its worker-minutes
(sum of ``train_seconds``), wall minutes (from the runs' status files), and the worst and
median MRE / mean-shape ratio, and how many runs miss the floor::

    python benchmarks/demo_budget.py curve results/demo results/demo_short ...

or ``--run PROFILE.yaml ...`` to run those profiles first (``xlm study run --no-aggregate``).

``trace``: the same trade-off measured from ONE finished study whose runs had ``trace_mre: true``
(every epoch's test MRE in ``history.csv``); :func:`xlm_core.report.ablation.budget_curve` explains
why a prefix of a traced run is the run a smaller budget would have given::

    python benchmarks/demo_budget.py trace results/demo --fractions 0.2,0.4,0.6,0.8,1.0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from xlm_core.metrics import baseline_ratio  # after the environment defaults

FLOOR = 0.35  # test MRE / mean-shape MRE must not exceed this


# --------------------------------------------------------------------------- steps


def learning_curve(
    dataset: str,
    root: str,
    arch: str,
    encoder: str,
    loss: str,
    lr: float,
    sigma: float = 1.5,
    size_hw: tuple[int, int] = (64, 64),
    test_size_hw: tuple[int, int] | None = None,
    max_steps: int = 300,
    eval_every: int = 20,
    batch_size: int = 2,
    seed: int = 0,
    floor: float = FLOOR,
    stop_at_floor: bool = True,
    extra: dict | None = None,
    folds: int | None = None,
    fold: int | None = None,
) -> dict:
    """Train ``max_steps`` steps (or until the floor), scoring the test split every ``eval_every``.

    Returns ``{"curve": [{"step", "mre", "mean_shape_mre", "ratio", "train_loss"}], "steps_to_floor":
    int | None, "seconds": float}``; ``ratio`` = test MRE / mean-shape MRE (clean protocol).
    """
    import torch

    from xlm_core.augment import default_augmenter
    from xlm_core.config import RunConfig
    from xlm_core.datasets.cache import PreprocessCache
    from xlm_core.evaluation import (
        image_hws_of,
        mean_shape_of,
        model_logits,
        predict_split,
        score_split,
    )
    from xlm_core.losses import get_loss
    from xlm_core.models import build_model
    from xlm_core.samples import run_samples
    from xlm_core.torchdata import HeatmapDataset, make_loader
    from xlm_core.training import seed_everything

    cfg = RunConfig(dataset=dataset, root=root, out="", arch=arch, encoder=encoder, loss=loss, lr=lr,
                    sigma=sigma, train_size=size_hw, seed=seed, extra=dict(extra or {}), val_fraction=0.15,
                    folds=folds, fold=fold)
    seed_everything(seed)
    samples = run_samples(cfg)
    test_hw = tuple(test_size_hw or size_hw)
    cache = PreprocessCache()
    device = torch.device("cpu")
    model = build_model(arch, encoder, samples.lset.n_landmarks, "none")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = get_loss(loss)
    fit = HeatmapDataset(samples.fit, size_hw, sigma, cache, default_augmenter(), seed=seed)
    shape = mean_shape_of(samples.train_part, image_hws_of(samples.train_part))
    curve: list[dict] = []
    step, epoch, running = 0, 0, []
    t0 = time.perf_counter()
    reached = None
    while step < max_steps:
        model.train()
        for batch in make_loader(fit, batch_size, shuffle=True, epoch=epoch, seed=seed):
            logits = model_logits(model, batch["image"], device)
            value = loss_fn(logits, batch["heatmaps"])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            running.append(float(value.detach()))
            step += 1
            if step % eval_every == 0 or step == max_steps:
                pred = predict_split(model, samples.test, test_hw, loss, sigma, cache, device, batch_size=8)
                clean = score_split(pred, samples.lset, shape)["clean"]
                ratio = baseline_ratio(clean)
                curve.append({"step": step, "mre": clean["mre"], "mean_shape_mre": clean["mean_shape_mre"],
                              "ratio": ratio, "train_loss": statistics.fmean(running)})
                running = []
                print(f"  {dataset} {arch}/{encoder} {loss} lr {lr:g}: step {step} ratio {ratio:.3f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
                model.train()
                if ratio <= floor and reached is None:
                    reached = step
                    if stop_at_floor:
                        break
            if step >= max_steps:
                break
        if reached is not None and stop_at_floor:
            break
        epoch += 1
    return {"curve": curve, "steps_to_floor": reached, "seconds": time.perf_counter() - t0,
            "n_fit": len(samples.fit), "n_test": len(samples.test)}


PAPER_TEST_HW = {"head": (512, 416), "hand": (512, 368), "chest": (512, 512)}


def paper_test_size(anatomy: str, height: int) -> tuple[int, int]:
    """The paper's test size (H, W) of ``anatomy`` scaled to ``height`` rows (as the demo profile)."""
    h, w = PAPER_TEST_HW[anatomy]
    return height, max(1, round(w * height / h))


def _phantoms(anatomy: str, folder: Path, n: int, seed: int) -> Path:
    from xlm_core.datasets.synth import write_phantoms

    out = folder / f"{anatomy}-n{n}-s{seed}"
    if not (out / "SYNTHETIC.json").is_file():
        write_phantoms(anatomy, out, n=n, seed=seed)
    return out


def cmd_steps(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    results = []
    out = Path(args.out) if args.out else None
    if out is not None and out.is_file():
        results = json.loads(out.read_text())
    done = {(r["anatomy"], r["arch"], r["encoder"], r["loss"], r["lr"], tuple(r["size"])) for r in results}
    for anatomy in args.anatomies.split(","):
        root = _phantoms(anatomy, Path(args.data), args.n, 0)
        for pair in args.pairs.split(","):
            arch, encoder = pair.split(":")
            for loss in args.losses.split(","):
                for lr in (float(v) for v in args.lrs.split(",")):
                    key = (anatomy, arch, encoder, loss, lr, tuple(size))
                    if key in done:
                        continue
                    extra = {"wrist_pair": [1, 5]} if anatomy == "hand" else {}
                    res = learning_curve(anatomy, str(root), arch, encoder, loss, lr, sigma=args.sigma,
                                         size_hw=size, test_size_hw=paper_test_size(anatomy, size[0]),
                                         max_steps=args.max_steps, eval_every=args.eval_every,
                                         extra=extra, folds=args.folds, fold=args.fold)
                    row = {"anatomy": anatomy, "arch": arch, "encoder": encoder, "loss": loss, "lr": lr,
                           "folds": args.folds, "fold": args.fold,
                           "size": list(size), "sigma": args.sigma, "n": args.n, "threads": args.threads,
                           **res}
                    results.append(row)
                    print(f"{anatomy} {arch}/{encoder} {loss} lr {lr:g}: steps to floor "
                          f"{res['steps_to_floor']} (best ratio {min(c['ratio'] for c in res['curve']):.3f}, "
                          f"{res['seconds']:.0f} s)", flush=True)
                    if out is not None:
                        from xlm_core.io import atomic_write_json

                        atomic_write_json(out, results)
    return 0


# --------------------------------------------------------------------------- project

#: seconds per training step (forward, loss, backward, Adam), batch 2x3x64x64, 1 thread, this
#: project's 2-core CPU, measured for the issue "Models that learn" (deeplabv3/efficientnet-b7
#: was not measured: assumed like unetplusplus/efficientnet-b7 + 30 %)
STEP_S_64 = {
    ("unet", "vgg19"): 0.41, ("unetplusplus", "vgg19"): 1.06, ("unet", "resnext101_32x8d"): 0.86,
    ("unet", "efficientnet-b7"): 0.67, ("deeplabv3", "resnext101_32x8d"): 1.6,
    ("unetplusplus", "efficientnet-b7"): 0.76, ("unetplusplus", "resnext101_32x8d"): 1.2,
    ("deeplabv3", "efficientnet-b7"): 1.0,
}


def grid_worker_seconds(first_steps: int, finetune_steps: int, backbone_steps: int, ablation_runs: int,
                        transfer_seeds: int = 2, backbone_seeds: int = 1, folds: int = 2,
                        overhead_s: float = 12.0, step_s: dict | None = None) -> dict:
    """Worker-seconds of the demo grid: 8 backbone pairs x folds x seeds, per transfer seed
    3 first stages and 12 later stages (UNet++/VGG19), ``ablation_runs`` first-stage-length
    runs; ``overhead_s`` per run (kernel start, imports, evaluation, checkpoints)."""
    step_s = step_s or STEP_S_64
    tr = step_s[("unetplusplus", "vgg19")]
    backbone = sum(step_s.values()) * backbone_steps * folds * backbone_seeds
    transfer = transfer_seeds * (3 * first_steps + 12 * finetune_steps) * tr
    ablation = ablation_runs * first_steps * tr
    n_runs = len(step_s) * folds * backbone_seeds + 15 * transfer_seeds + ablation_runs
    return {"backbone": backbone, "transfer": transfer, "ablation": ablation,
            "overhead": n_runs * overhead_s, "runs": n_runs,
            "total": backbone + transfer + ablation + n_runs * overhead_s}


def ratio_at(curve: list[dict], steps: int, best: bool = True) -> float | None:
    """The test ratio after ``steps`` steps of a learning curve (the last evaluation at or
    before ``steps``); ``best``: the lowest so far (as a run that keeps its best checkpoint)."""
    points = [c["ratio"] for c in curve if c["step"] <= steps]
    if not points:
        return None
    return min(points) if best else points[-1]


def cmd_project(args: argparse.Namespace) -> int:
    rows = []
    for path in args.steps:
        rows.extend(json.loads(Path(path).read_text()))
    rows = [r for r in rows if r["loss"] == args.loss and r["arch"] == "unetplusplus" and r["encoder"] == "vgg19"]
    print(f"projected demo grid on {args.workers} idle cores, 1 thread each; ratios from the "
          f"steps sweep ({args.loss}, UNet++/VGG19, best-so-far; anatomies: "
          f"{', '.join(sorted({r['anatomy'] for r in rows}))})")
    print(f"{'first steps':>11} {'finetune':>8} {'worker min':>10} {'wall min':>8} {'worst ratio':>11} "
          f"{'median':>7}")
    out = []
    for budget in (int(v) for v in args.budgets.split(",")):
        fine = max(1, round(budget * args.finetune_fraction))
        cost = grid_worker_seconds(budget, fine, budget, args.ablation_runs, overhead_s=args.overhead_s)
        ratios = [ratio_at(r["curve"], budget) for r in rows]
        ratios = [v for v in ratios if v is not None]
        worst = max(ratios) if ratios else float("nan")
        median = statistics.median(ratios) if ratios else float("nan")
        wall = cost["total"] / args.workers / 60
        print(f"{budget:>11} {fine:>8} {cost['total'] / 60:>10.1f} {wall:>8.1f} {worst:>11.3f} {median:>7.3f}")
        out.append({"first_steps": budget, "finetune_steps": fine, **cost, "wall_minutes": wall,
                    "worst_ratio": worst, "median_ratio": median})
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


# --------------------------------------------------------------------------- curve


def study_budget(results_dir: Path, floor: float = FLOOR) -> dict:
    """One point of the trade-off curve: a finished study's cost and its worst/median ratio.

    ``worker_minutes``: sum of the runs' ``train_seconds`` (training only) and of their
    notebook seconds (status.json, training + kernel start + evaluation); ``wall_minutes``:
    first run start to last run end (status.json ``finished`` minus ``seconds``).
    """
    from datetime import datetime

    study = json.loads((results_dir / "study.json").read_text())
    ratios, train_s, nb_s, starts, ends, missing = [], 0.0, 0.0, [], [], []
    for run in study["runs"]:
        run_dir = results_dir / "runs" / run["run_id"]
        try:
            m = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            missing.append(run["run_id"])
            continue
        ratios.append(baseline_ratio(m))
        train_s += float(m.get("train_seconds", 0.0))
        try:
            st = json.loads((run_dir / "status.json").read_text())
            end = datetime.fromisoformat(st["finished"]).timestamp()
            nb_s += float(st["seconds"])
            starts.append(end - float(st["seconds"]))
            ends.append(end)
        except (OSError, ValueError, KeyError):
            pass
    return {
        "study": study["study"],
        "runs": len(study["runs"]),
        "finished": len(ratios),
        "missing": missing,
        "train_worker_minutes": train_s / 60,
        "notebook_worker_minutes": nb_s / 60,
        "wall_minutes": (max(ends) - min(starts)) / 60 if ends else None,
        "worst_ratio": max(ratios) if ratios else None,
        "median_ratio": statistics.median(ratios) if ratios else None,
        "below_floor": sum(r > floor for r in ratios),
    }


def cmd_curve(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.results]
    for profile in args.run or []:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "xlm_core.cli", "study", "run", profile, "--no-aggregate",
                        "--results", args.results_root], check=False)
        name = Path(profile).stem
        print(f"{profile}: {time.perf_counter() - t0:.0f} s wall", flush=True)
        dirs.append(Path(args.results_root) / name)
    rows = [study_budget(d) for d in dirs]
    print(f"{'study':<16} {'runs':>4} {'wall min':>8} {'nb w-min':>8} {'train w-min':>11} "
          f"{'worst':>6} {'median':>6} {'> floor':>7}")
    for r in rows:
        wall = "" if r["wall_minutes"] is None else f"{r['wall_minutes']:.1f}"
        print(f"{r['study']:<16} {r['finished']:>4} {wall:>8} {r['notebook_worker_minutes']:>8.1f} "
              f"{r['train_worker_minutes']:>11.1f} {r['worst_ratio']:>6.3f} {r['median_ratio']:>6.3f} "
              f"{r['below_floor']:>7}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from xlm_core.report.ablation import budget_curve
    from xlm_core.report.results import load_study

    fractions = [float(v) for v in args.fractions.split(",")]
    rows = budget_curve(load_study(args.results), fractions, args.workers).to_dict("records")
    print(f"{args.results}: budget = a fraction of every run's epochs; ratio = test MRE / mean-shape "
          f"MRE at the best-validation epoch within the budget (traced); minutes = those epochs + each "
          f"run's measured overhead, over {args.workers} workers. Transfer stages after the first are "
          f"traced from full-budget parents (an approximation).")
    archs = [k for k in rows[0] if k.startswith("worst_") and k != "worst_ratio"] if rows else []
    print(f"{'fraction':>8} {'worker min':>10} {'wall min':>8} {'worst':>6} {'median':>6} {'> floor':>9} "
          f"{'ablation worst':>14}" + "".join(f" {a:>18}" for a in archs))
    for r in rows:
        print(f"{r['fraction']:>8.2f} {r['worker_minutes']:>10.1f} {r['wall_minutes']:>8.1f} "
              f"{r['worst_ratio']:>6.3f} {r['median_ratio']:>6.3f} "
              f"{r['above_floor']:>4}/{r['table_runs']:<4} {r['ablation_worst']:>14.3f}"
              + "".join(f" {r[a]:>18.3f}" for a in archs))
    measured = study_budget(Path(args.results))
    print(f"measured at fraction 1: {measured['wall_minutes']:.1f} wall minutes, "
          f"{measured['notebook_worker_minutes']:.1f} notebook worker-minutes (the projection above "
          f"ignores idle workers waiting on a parent run, and the aggregation notebooks)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("steps", help="steps to the floor per anatomy, pair, loss and lr")
    s.add_argument("--anatomies", default="head,hand,chest")
    s.add_argument("--pairs", default="unetplusplus:vgg19")
    s.add_argument("--losses", default="spatial_ce,mse,bce,awing")
    s.add_argument("--lrs", default="1e-3")
    s.add_argument("--sigma", type=float, default=1.5)
    s.add_argument("--size", default="64x64", help="train and test size HxW")
    s.add_argument("--n", type=int, default=32, help="phantoms per anatomy")
    s.add_argument("--folds", type=int, help="train on a k-fold split's training part (as a backbone run)")
    s.add_argument("--fold", type=int)
    s.add_argument("--max-steps", type=int, default=300)
    s.add_argument("--eval-every", type=int, default=20)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--data", default="/tmp/xlm-demo-budget")
    s.add_argument("--out", help="JSON file (appended to; finished rows are skipped)")
    s.set_defaults(func=cmd_steps)
    p = sub.add_parser("project", help="projected grid minutes against ratio, from steps sweeps")
    p.add_argument("steps", nargs="+", help="JSON files written by the steps mode")
    p.add_argument("--loss", default="spatial_ce")
    p.add_argument("--budgets", default="60,100,150,200,300")
    p.add_argument("--finetune-fraction", type=float, default=0.5,
                   help="steps of a transfer stage after the first, as a fraction of the first's")
    p.add_argument("--ablation-runs", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--overhead-s", type=float, default=60.0,
                   help="seconds per run beyond the training steps (kernel, imports, evaluation, "
                   "per-epoch checkpoints, figures); measured ~120 s per demo run on a loaded machine")
    p.add_argument("--json")
    p.set_defaults(func=cmd_project)
    c = sub.add_parser("curve", help="minutes against worst/median MRE ratio of finished studies")
    c.add_argument("results", nargs="*", help="results/<study> folders")
    c.add_argument("--run", nargs="*", help="profiles to run first (xlm study run --no-aggregate)")
    c.add_argument("--results-root", default="results")
    c.add_argument("--json", help="write the rows here")
    c.set_defaults(func=cmd_curve)
    t = sub.add_parser("trace", help="minutes against ratio from one study traced with trace_mre")
    t.add_argument("results", help="results/<study> folder")
    t.add_argument("--fractions", default="0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--json", help="write the rows here")
    t.set_defaults(func=cmd_trace)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
