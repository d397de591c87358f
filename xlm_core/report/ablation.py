"""The loss x learning-rate ablation of the method chapter (``notebooks/ablation.py``).

A profile's ``ablation:`` section (see :mod:`xlm_core.study.profile`) expands into runs of
kind ``"ablation"``: one run per (loss, learning rate) on one dataset and seed, trained on
the full training split and scored on the test split like every other run. This module
reads them back from the loaded study (:class:`~xlm_core.report.results.StudyInfo`: its runs,
their ``ablation_runs`` grid and its settings) and the run folders
(``runs/<id>/{metrics.json, history.csv, status.json}``) into

- :func:`ablation_table`: one row per run, its test MRE beside the mean-shape baseline's
  on the same images (``ratio`` = MRE / mean-shape MRE; the study's quality floor is
  ``ratio <= 0.35``), the steps it trained, when its best epoch came;
- :func:`ablation_curves`: the learning curves (train and validation loss per epoch, and
  the validation MRE / mean-shape ratio when traced, against optimisation steps);
- :func:`plot_ablation`: the curves, one panel per loss, and the final ratio per loss and
  learning rate.

A run that has not finished is listed with ``state = "missing"`` (never silently dropped).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from xlm_core import XLMError
from xlm_core.metrics import baseline_ratio
from xlm_core.report.results import StudyInfo, read_json, run_dir, steps_per_epoch

FLOOR = 0.35  # the demo's quality floor: test MRE <= FLOOR x mean-shape MRE
TABLE_COLUMNS = ("run_id", "state", "dataset", "arch", "encoder", "seed", "loss", "lr", "sigma", "mre",
                 "mean_shape_mre", "ratio", "unit", "meets_floor", "epochs_run", "best_epoch",
                 "steps_per_epoch", "steps", "train_seconds", "decoder")


def ablation_runs(study: StudyInfo) -> list[dict]:
    """The ablation's runs of ``study`` (:func:`~xlm_core.report.results.load_study`; may be empty).

    ``study.ablation_runs`` (a list of run ids, written by the runner) when present: a grid point
    with the very settings of another run of the study (the default loss and lr) is that run,
    whatever its kind; else every run of kind ``"ablation"``.
    """
    ids = study.ablation_runs
    if ids is None:
        return [r for r in study.runs if r.get("kind") == "ablation"]
    by_id = {r.get("run_id"): r for r in study.runs}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise XLMError(f"{study.results_dir / 'study.json'}: ablation_runs names run(s) not in runs: "
                       f"{unknown[:3]}")
    return [by_id[i] for i in ids]


def _floor_fields(metrics: dict, floor: float) -> dict:
    """A finished run's ``metrics.json`` against the floor: state, MRE, mean-shape MRE, ratio,
    unit, meets_floor, train_seconds."""
    from xlm_core.registry import scored_decoder

    ratio = baseline_ratio(metrics)
    return {"state": "done", "mre": metrics["mre"], "mean_shape_mre": metrics.get("mean_shape_mre"),
            "ratio": ratio, "unit": metrics.get("unit"), "meets_floor": bool(ratio <= floor),
            "train_seconds": metrics.get("train_seconds"), "decoder": scored_decoder(metrics)}


def ablation_table(study: StudyInfo, floor: float = FLOOR) -> pd.DataFrame:
    """One row per ablation run of ``study`` (columns :data:`TABLE_COLUMNS`), sorted by loss then lr.

    ``ratio`` = test MRE / mean-shape MRE (clean protocol, same images); ``meets_floor`` =
    ``ratio <= floor``; ``steps`` = ``epochs_run`` x :func:`steps_per_epoch`.
    """
    rows = []
    for run in ablation_runs(study):
        cfg = run.get("config") or {}
        row = {"run_id": run["run_id"], "state": "missing", "dataset": run.get("dataset"),
               "arch": run.get("arch"), "encoder": run.get("encoder"), "seed": run.get("seed"),
               "loss": cfg.get("loss", run.get("loss")), "lr": cfg.get("lr", run.get("lr")),
               "sigma": cfg.get("sigma")}
        path = run_dir(study.results_dir, run["run_id"]) / "metrics.json"
        if path.is_file():
            m = read_json(path)
            spe = steps_per_epoch(m)
            row.update({**_floor_fields(m, floor), "epochs_run": m.get("epochs_run"),
                        "best_epoch": m.get("best_epoch"), "steps_per_epoch": spe,
                        "steps": int(m.get("epochs_run") or 0) * spe})
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    if len(table):
        table = table.sort_values(["loss", "lr"], ascending=[True, False], kind="stable").reset_index(drop=True)
    return table


def ablation_curves(study: StudyInfo) -> pd.DataFrame:
    """Learning curves of the finished ablation runs of ``study``, long form.

    Columns: ``run_id, loss, lr, epoch, step, train_loss, val_loss, val_ratio`` (``step`` =
    optimiser steps done at the end of ``epoch``; ``val_ratio``: validation MRE / mean-shape
    MRE when the run traced it, ``trace_mre``, else NaN). Runs without ``history.csv`` are left out (their
    absence shows in :func:`ablation_table`).
    """
    frames = []
    for run in ablation_runs(study):
        folder = run_dir(study.results_dir, run["run_id"])
        hist_path, metrics_path = folder / "history.csv", folder / "metrics.json"
        if not hist_path.is_file():
            continue
        try:
            hist = pd.read_csv(hist_path)
        except (OSError, ValueError) as exc:
            raise XLMError(f"{hist_path}: not a readable history ({exc})") from None
        missing = {"epoch", "train_loss", "val_loss"} - set(hist.columns)
        if missing:
            raise XLMError(f"{hist_path}: missing column(s) {sorted(missing)}")
        spe = steps_per_epoch(read_json(metrics_path)) if metrics_path.is_file() else 1
        cfg = run.get("config") or {}
        frames.append(pd.DataFrame({
            "run_id": run["run_id"], "loss": cfg.get("loss"), "lr": cfg.get("lr"),
            "epoch": hist["epoch"].astype(int), "step": hist["epoch"].astype(int) * spe,
            "train_loss": hist["train_loss"].astype(float), "val_loss": hist["val_loss"].astype(float),
            "val_ratio": hist["val_ratio"].astype(float) if "val_ratio" in hist else float("nan"),
        }))
    if not frames:
        return pd.DataFrame(columns=["run_id", "loss", "lr", "epoch", "step", "train_loss", "val_loss", "val_ratio"])
    return pd.concat(frames, ignore_index=True)


def display_table(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The columns a reader needs, rounded: loss, lr, MRE, mean shape, ratio, floor, decoder, steps."""
    cols = ["loss", "lr", "mre", "mean_shape_mre", "ratio", "meets_floor", "decoder", "steps", "best_epoch",
            "epochs_run", "state"]
    out = table[[c for c in cols if c in table.columns]].copy()
    for c in ("mre", "mean_shape_mre", "ratio"):
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce").round(digits)
    return out.rename(columns={"mre": "test MRE", "mean_shape_mre": "mean-shape MRE",
                               "ratio": "MRE / mean shape", "meets_floor": f"<= {FLOOR} x mean shape"})


def plot_ablation(curves: pd.DataFrame, table: pd.DataFrame, caption: str | None = None,
                  floor: float = FLOOR) -> Figure:
    """Learning curves per loss (one line per lr, against steps) and a last panel with the
    final test MRE / mean-shape ratio per loss and lr (the floor drawn as a dashed line).

    The curves are the validation MRE / mean-shape ratio when the runs traced it (one scale for
    every loss, the floor and the mean shape drawn), else the validation loss (one scale each)."""
    losses = sorted(set(table["loss"].dropna())) if len(table) else []
    n = max(1, len(losses))
    fig = Figure(figsize=(3.0 * (n + 1), 2.8), layout="constrained")
    axes = fig.subplots(1, n + 1, squeeze=False)[0]
    traced = "val_ratio" in curves and bool(curves["val_ratio"].notna().any())
    for ax, loss in zip(axes, losses):
        sub = curves[curves["loss"] == loss] if len(curves) else curves
        for lr, group in sub.groupby("lr"):
            ax.plot(group["step"], group["val_ratio" if traced else "val_loss"], marker=".", label=f"lr {lr:g}")
        if traced:
            ax.axhline(floor, linestyle="--", color="black", linewidth=1)
            ax.axhline(1.0, linestyle=":", color="grey", linewidth=1)
            ax.set_yscale("log")
        ax.set_title(f"{loss}: validation " + ("MRE / mean shape" if traced else "loss"), fontsize=9)
        ax.set_xlabel("optimiser steps")
        if len(sub):
            ax.legend(fontsize=7)
    ax = axes[-1]
    done = table[table["state"] == "done"] if len(table) else table
    if len(done):
        lrs = sorted(set(done["lr"]), reverse=True)
        width = 0.8 / max(1, len(lrs))
        for k, lr in enumerate(lrs):
            sub = done[done["lr"] == lr].set_index("loss").reindex(losses)
            xs = [i + (k - (len(lrs) - 1) / 2) * width for i in range(len(losses))]
            ax.bar(xs, sub["ratio"], width=width, label=f"lr {lr:g}")
        ax.axhline(floor, linestyle="--", color="black", linewidth=1, label=f"floor {floor}")
        ax.axhline(1.0, linestyle=":", color="grey", linewidth=1, label="mean shape")
        ax.set_xticks(range(len(losses)), losses, fontsize=8)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_title("test MRE / mean-shape MRE", fontsize=9)
    if caption:
        fig.suptitle(caption, fontsize=8, wrap=True)
    return fig


# --------------------------------------------------------------------------- the floor, study-wide

FLOOR_COLUMNS = ("run_id", "kind", "run", "dataset", "state", "mre", "mean_shape_mre", "ratio", "unit",
                 "meets_floor", "train_seconds", "decoder")


def _what(run: dict) -> str:
    """A run in a few words, without its kind."""
    if run.get("kind") == "backbone":
        return f"{run.get('arch')}/{run.get('encoder')} fold {run.get('fold')}, seed {run.get('seed')}"
    if run.get("kind") == "transfer":
        return f"{'>'.join(run.get('chain') or [])}>{run.get('dataset')}, seed {run.get('seed')}"
    cfg = run.get("config") or {}
    return f"{cfg.get('loss')} lr {cfg.get('lr'):g}, seed {run.get('seed')}"


def floor_table(study: StudyInfo, floor: float = FLOOR) -> pd.DataFrame:
    """Every run of ``study`` against the quality floor (columns :data:`FLOOR_COLUMNS`):
    ``ratio`` = its headline MRE (``metrics.json`` ``mre``) / the mean-shape MRE on the same
    images. A run without ``metrics.json`` has ``state = "missing"``."""
    rows = []
    for run in study.runs:
        row = {"run_id": run["run_id"], "kind": run.get("kind"), "run": _what(run),
               "dataset": run.get("dataset"), "state": "missing"}
        path = run_dir(study.results_dir, run["run_id"]) / "metrics.json"
        if path.is_file():
            row.update(_floor_fields(read_json(path), floor))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(FLOOR_COLUMNS))


def floor_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per kind of run: how many, how many finished, worst and median ratio, how many miss the floor."""
    done = table[table["state"] == "done"]
    rows = []
    for kind, group in table.groupby("kind", sort=False):
        g = done[done["kind"] == kind]
        rows.append({"kind": kind, "runs": len(group), "finished": len(g),
                     "worst ratio": round(float(g["ratio"].max()), 3) if len(g) else math.nan,
                     "median ratio": round(float(g["ratio"].median()), 3) if len(g) else math.nan,
                     f"above {FLOOR}": int((~g["meets_floor"].astype(bool)).sum())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- budget curve


def _history(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise XLMError(f"{path}: not a readable history ({exc})") from None


def best_epoch_within(history: pd.DataFrame, epochs: int) -> int:
    """The epoch whose checkpoint a run given ``epochs`` epochs keeps: the one the trainer's
    :class:`~xlm_core.training.EarlyStopping` marks best among the first ``epochs``."""
    from xlm_core.training import EarlyStopping

    stopper = EarlyStopping(patience=len(history) + 1)
    for epoch, val_loss in zip(history["epoch"][:epochs], history["val_loss"][:epochs]):
        stopper.step(float(val_loss), int(epoch))
    return stopper.best_epoch


def trace_decoders(study: StudyInfo) -> pd.DataFrame:
    """How the traced runs of ``study`` were decoded: one row per (``trace_decoder``, ``decoder``)
    pair with its number of runs. ``trace_decoder`` decoded history.csv's trace (the budget
    curve), ``decoder`` the final metrics; they differ for a run scored again after the
    decoder changed. metrics.json without them predates named decoders: ``newton``."""
    from xlm_core.registry import scored_decoder

    counts: dict[tuple[str, str], int] = {}
    for run in study.runs:
        path = run_dir(study.results_dir, run["run_id"]) / "metrics.json"
        if not path.is_file():
            continue
        m = read_json(path)
        decoder = scored_decoder(m)
        if "trace_decoder" in m and m["trace_decoder"] is None:
            continue  # not traced
        key = (m.get("trace_decoder") or decoder, decoder)
        counts[key] = counts.get(key, 0) + 1
    return pd.DataFrame([{"trace_decoder": t, "decoder": d, "runs": n} for (t, d), n in sorted(counts.items())],
                        columns=["trace_decoder", "decoder", "runs"])


def budget_curve(study: StudyInfo, fractions=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                 workers: int = 2, floor: float = FLOOR) -> pd.DataFrame:
    """Minutes against quality, measured from ONE study (``study``) whose runs traced their MRE
    (``trace_mre``: every epoch's test MRE / mean-shape MRE in ``history.csv``).

    Training is a prefix of itself: the plateau schedule and early stopping look only at the
    validation losses so far, never at the budget. So a run given a fraction ``f`` of its
    epochs trains exactly its first ``ceil(f x epochs)`` epochs and keeps the best-validation
    checkpoint among them (:func:`best_epoch_within`): its test ratio is the traced one at that
    epoch. Cost at ``f``: those epochs' seconds plus the run's measured overhead (notebook
    seconds from ``status.json`` minus training and trace seconds), summed (``worker_minutes``)
    and over ``workers`` (``wall_minutes``, a lower bound: runs waiting on a parent idle a
    worker). One approximation: a transfer stage after the first is traced from its parent
    trained at the full budget. The seconds are those of the notebook run that trained the run
    (``first_done_seconds``), not of a later one that only scored it again. The ratios are those
    of the trace, decoded as it was then (metrics.json ``trace_decoder``; :func:`trace_decoders`).
    Ratios: worst / median / count above the floor over the runs
    that feed the tables (backbone and transfer), ``worst_<arch>`` per architecture among
    them, and the worst ablation run apart. Only traced runs on the plateau schedule count (a
    cosine schedule depends on its length, so its prefix is not a shorter run); when none of
    them feeds the tables (the demo traces its ablation only), worst / median / per
    architecture are over the ablation's runs of the study's loss. ``curve.attrs["runs"]``
    says which runs the curve is made of.
    """
    study_loss = (study.settings.get("run") or {}).get("loss")
    runs, skipped = [], 0
    for run in study.runs:
        folder = run_dir(study.results_dir, run["run_id"])
        hist = _history(folder / "history.csv")
        config = run.get("config") or {}
        # only a traced run on a schedule that never looks at its budget replays shorter budgets
        if "test_ratio" not in hist or config.get("lr_schedule", "plateau") != "plateau":
            skipped += 1
            continue
        status = read_json(folder / "status.json")
        traced_s = float(hist["seconds"].sum() + hist["trace_seconds"].fillna(0).sum())
        runs.append({"kind": run.get("kind"), "arch": run.get("arch"), "loss": config.get("loss"),
                     "epochs": int((run.get("config") or {})["epochs"]), "hist": hist,
                     "overhead_s": max(0.0, float(status.get("first_done_seconds") or status.get("seconds", traced_s))
                                       - traced_s)})
    if not runs:
        raise XLMError(f"{study.results_dir}: no run traced its MRE on the plateau schedule (`trace_mre: true`, "
                       "`lr_schedule: plateau`), so no budget can be replayed")
    # the ratios summarised: the runs feeding the tables when they were traced, else the ablation's
    # runs of the study's loss (the others show whether a loss learns at all, not how fast)
    basis = "table" if any(r["kind"] != "ablation" for r in runs) else "ablation"
    rows = []
    for f in fractions:
        table, abl, seconds, by_arch = [], [], 0.0, {}
        for r in runs:
            budget = max(1, math.ceil(f * r["epochs"]))
            best = best_epoch_within(r["hist"], budget)
            ratio = float(r["hist"].loc[r["hist"]["epoch"] == best, "test_ratio"].iloc[0])
            seconds += float(r["hist"]["seconds"][:budget].sum()) + r["overhead_s"]
            (abl if r["kind"] == "ablation" else table).append(ratio)
            counted = r["kind"] != "ablation" if basis == "table" else r["loss"] == study_loss
            if counted:
                if basis == "ablation":
                    table.append(ratio)
                by_arch[r["arch"]] = max(by_arch.get(r["arch"], ratio), ratio)
        rows.append({"fraction": f, "worker_minutes": seconds / 60, "wall_minutes": seconds / 60 / workers,
                     "worst_ratio": max(table) if table else math.nan,
                     "median_ratio": float(pd.Series(table).median()) if table else math.nan,
                     "above_floor": sum(v > floor for v in table), "table_runs": len(table),
                     "ablation_worst": max(abl) if abl else math.nan,
                     **{f"worst_{arch}": v for arch, v in sorted(by_arch.items())}})
    curve = pd.DataFrame(rows)
    kinds = sorted({r["kind"] for r in runs})
    curve.attrs["runs"] = (f"{len(runs)} traced {'/'.join(kinds)} run(s) on the plateau schedule"
                           + (f" ({skipped} other run(s) not traced or on another schedule)" if skipped else "")
                           + ("; ratios over the runs feeding the tables" if basis == "table"
                              else f"; ratios over the ablation's {study_loss} runs"))
    return curve


def plot_budget_curve(curve: pd.DataFrame, caption: str | None = None, floor: float = FLOOR) -> Figure:
    """The worst test ratio per architecture and the median over the runs feeding the tables,
    against projected wall minutes."""
    fig = Figure(figsize=(5.0, 3.0), layout="constrained")
    ax = fig.subplots()
    for col in [c for c in curve.columns if c.startswith("worst_") and c != "worst_ratio"]:
        ax.plot(curve["wall_minutes"], curve[col], marker="o", label=f"worst {col[len('worst_'):]} run")
    ax.plot(curve["wall_minutes"], curve["median_ratio"], marker=".", color="black", label="median run")
    for _, row in curve.iterrows():
        ax.annotate(f"{row['fraction']:g}", (row["wall_minutes"], row["median_ratio"]), fontsize=7,
                    textcoords="offset points", xytext=(3, 3))
    ax.axhline(floor, linestyle="--", color="black", linewidth=1, label=f"floor {floor}")
    ax.axhline(1.0, linestyle=":", color="grey", linewidth=1, label="mean shape")
    ax.set_yscale("log")
    ax.set_xlabel("projected wall minutes (training + overhead)")
    ax.set_ylabel("test MRE / mean-shape MRE")
    ax.legend(fontsize=7)
    if caption:
        fig.suptitle(caption, fontsize=8, wrap=True)
    return fig


def chosen_defaults(study: StudyInfo) -> dict:
    """The run settings the study's other runs use (``study.settings["run"]``): the defaults the
    ablation justifies (loss, lr, sigma, epochs, train_size) and the transfer stages'
    ``finetune`` overrides."""
    settings = study.settings
    run = settings.get("run") or {}
    out = {k: run.get(k) for k in ("loss", "lr", "sigma", "epochs", "patience", "train_size", "batch_size")}
    transfer = settings.get("transfer") or {}
    out["transfer.finetune"] = transfer.get("finetune") or {}
    return out


__all__ = [
    "FLOOR",
    "ablation_curves",
    "ablation_runs",
    "ablation_table",
    "best_epoch_within",
    "budget_curve",
    "chosen_defaults",
    "display_table",
    "floor_summary",
    "floor_table",
    "plot_ablation",
    "plot_budget_curve",
    "steps_per_epoch",
]
