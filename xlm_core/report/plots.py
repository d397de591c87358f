"""Figure helpers shared by the notebooks (matplotlib; every function returns its Figure).

Layouts: images ``(H, W)`` grey in [0, 1]; heatmaps ``(L, H, W)``; landmarks ``(L, 2)`` (x, y)
in the pixels of the image they are drawn on. Every figure takes a ``caption`` line naming the
profile, the data (synthetic / real) and the protocol that produced it (``StudyInfo.label``).

Why this file is over 500 lines: one function per figure of the book (about 15), each short;
splitting them by chapter would scatter the shared styles and caption helpers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xlm_core.report.beyond import chain_runs, study_error_matrices
from xlm_core.report.results import (
    MEAN_SHAPE,
    PUBLISHED_LABEL,
    StudyInfo,
    chain_before,
    chain_label,
    chain_start,
    data_roots,
    is_single_stage,
)

GT_STYLE = {"marker": "o", "s": 18, "facecolors": "none", "edgecolors": "lime", "linewidths": 1.2}
PRED_STYLE = {"marker": "x", "s": 18, "c": "red", "linewidths": 1.2}


def _figure(width: float, height: float) -> Figure:
    # Figure() rather than pyplot: no global state; the notebook displays the returned object
    return Figure(figsize=(width, height), layout="constrained")


def _caption(fig: Figure, caption: str | None) -> None:
    if caption:
        fig.suptitle(caption, fontsize=8, wrap=True)


def show(fig: Figure, dpi: int = 100) -> None:
    """Display ``fig`` in a notebook as a PNG output (whatever matplotlib backend is active),
    so the figure survives in the executed notebook and in the book's HTML."""
    import io

    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    display(Image(data=buffer.getvalue(), format="png"))


def show_landmarks(ax, image: np.ndarray, gt_xy: np.ndarray | None = None,
                   pred_xy: np.ndarray | None = None, title: str = "") -> None:
    """Draw ``image`` (H, W) with ground truth (green circles) and predictions (red crosses)."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if gt_xy is not None:
        gt = np.asarray(gt_xy)
        ax.scatter(gt[:, 0], gt[:, 1], label="ground truth", **GT_STYLE)
    if pred_xy is not None:
        pred = np.asarray(pred_xy)
        ax.scatter(pred[:, 0], pred[:, 1], label="prediction", **PRED_STYLE)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def heatmap_overlay(heatmaps: np.ndarray) -> np.ndarray:
    """Max over landmarks of ``(L, H, W)`` heatmaps, scaled to [0, 1]: one ``(H, W)`` map."""
    h = np.asarray(heatmaps, dtype=np.float64).max(axis=0)
    span = h.max() - h.min()
    return (h - h.min()) / span if span > 0 else np.zeros_like(h)


def plot_history(history: pd.DataFrame, caption: str | None = None) -> Figure:
    """Training curves from ``history.csv``: every ``*loss*`` column against ``epoch``, the
    traced MRE / mean-shape ratios when the run recorded them (``trace_mre``; log scale, with
    the mean shape at 1), and the learning rate when present (log scale)."""
    ratio_cols = [c for c in history.columns if c.endswith("_ratio")]
    fig = _figure(12 if ratio_cols else 8, 3)
    axes = list(fig.subplots(1, 3 if ratio_cols else 2))
    ax_loss, ax_lr = axes[0], axes[-1]
    x = history["epoch"] if "epoch" in history else np.arange(len(history))
    for col in history.columns:
        if "loss" in col:
            ax_loss.plot(x, history[col], marker=".", label=col)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(fontsize=8)
    if ratio_cols:
        ax = axes[1]
        for col in ratio_cols:
            ax.plot(x, history[col], marker=".", label=col.replace("_ratio", " MRE / mean shape"))
        ax.axhline(1.0, linestyle=":", color="grey", linewidth=1, label="mean shape")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    lr_cols = [c for c in history.columns if c == "lr" or c.startswith("lr")]
    if lr_cols:
        ax_lr.plot(x, history[lr_cols[0]], marker=".")
        ax_lr.set_yscale("log")
        ax_lr.set_ylabel("learning rate")
        ax_lr.set_xlabel("epoch")
    else:
        ax_lr.set_axis_off()
    _caption(fig, caption)
    return fig


def plot_prediction(image: np.ndarray, heatmaps: np.ndarray, gt_xy: np.ndarray,
                    pred_xy: np.ndarray, caption: str | None = None) -> Figure:
    """A test image with its predicted heatmaps (max over landmarks) and the landmarks.

    All on the same grid: ``image`` (H, W), ``heatmaps`` (L, H, W), landmarks (L, 2) grid px.
    """
    fig = _figure(8, 4)
    ax_img, ax_hm = fig.subplots(1, 2)
    show_landmarks(ax_img, image, gt_xy, pred_xy, "landmarks: ground truth (o), prediction (x)")
    ax_img.legend(fontsize=7, loc="lower right")
    ax_hm.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax_hm.imshow(heatmap_overlay(heatmaps), cmap="magma", alpha=0.6)
    ax_hm.set_title("predicted heatmaps (max over landmarks)", fontsize=9)
    ax_hm.set_axis_off()
    _caption(fig, caption)
    return fig


def plot_per_landmark(per_landmark: dict[str, list[float]], unit: str,
                      caption: str | None = None) -> Figure:
    """Bars of the mean error per landmark (1-based), one series per label (model, baseline)."""
    fig = _figure(8, 3)
    ax = fig.subplots()
    n = max(len(v) for v in per_landmark.values())
    width = 0.8 / len(per_landmark)
    for k, (label, values) in enumerate(per_landmark.items()):
        ax.bar(np.arange(1, len(values) + 1) + k * width - 0.4 + width / 2, values, width, label=label)
    ax.set_xticks(np.arange(1, n + 1))
    ax.set_xlabel("landmark (1-based)")
    ax.set_ylabel(f"mean radial error ({unit})")
    if len(per_landmark) > 2:  # beside the axes: inside, it would hide the first landmarks' bars
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8)
    _caption(fig, caption)
    return fig


def plot_backbones(table1: pd.DataFrame, caption: str | None = None) -> Figure:
    """Table 1 as bars: MRE mean ± std over folds per arch/encoder, mean-shape as a line."""
    fig = _figure(8, 3.5)
    ax = fig.subplots()
    models = table1[table1["arch"] != MEAN_SHAPE]
    labels = [f"{a}\n{e}" for a, e in zip(models["arch"], models["encoder"], strict=True)]
    ax.bar(labels, models["mre"], yerr=models["mre_std"].fillna(0), capsize=3, color="tab:blue")
    base = table1[table1["arch"] == MEAN_SHAPE]["mre"]
    if len(base) and np.isfinite(base.iloc[0]):
        ax.axhline(base.iloc[0], color="grey", ls="--", label=MEAN_SHAPE)
        ax.legend(fontsize=8)
    unit = models["unit"].dropna().iloc[0] if models["unit"].notna().any() else ""
    ax.set_ylabel(f"MRE ({unit}), mean ± std over folds")
    ax.tick_params(axis="x", labelsize=7)
    _caption(fig, caption)
    return fig


def plot_transfer(table2: pd.DataFrame, caption: str | None = None) -> Figure:
    """Table 2 as one panel per target: MRE mean ± std over seeds per chain, mean-shape line."""
    targets = list(dict.fromkeys(table2["target"]))
    fig = _figure(4 * len(targets), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(targets)))
    for ax, target in zip(axes, targets, strict=True):
        rows = table2[(table2["target"] == target) & (table2["chain"] != MEAN_SHAPE)]
        control = rows["is_control"].fillna(False).astype(bool) if "is_control" in rows else pd.Series(False, index=rows.index)
        colours = ["tab:grey" if c else "tab:orange" for c in control]
        ax.bar(rows["chain"], rows["mre"], yerr=rows["mre_std"].fillna(0), capsize=3, color=colours)
        handles = []
        if control.any():
            from matplotlib.patches import Patch

            handles = [Patch(color="tab:orange", label="chain"),
                       Patch(color="tab:grey", label="matched control (target alone)")]
        base = table2[(table2["target"] == target) & (table2["chain"] == MEAN_SHAPE)]["mre"]
        if len(base) and np.isfinite(base.iloc[0]):
            handles.append(ax.axhline(base.iloc[0], color="grey", ls="--", label=MEAN_SHAPE))
        if handles:
            ax.legend(handles=handles, fontsize=7)
        unit = rows["unit"].dropna().iloc[0] if rows["unit"].notna().any() else ""
        ax.set_title(f"target: {target}", fontsize=9)
        ax.set_ylabel(f"MRE ({unit})")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    _caption(fig, caption)
    return fig


def plot_sota(table3: pd.DataFrame, caption: str | None = None) -> Figure:
    """Table 3 as one panel per dataset: published MREs (grey) beside ours (coloured, by protocol)."""
    datasets = list(dict.fromkeys(table3["dataset"]))
    fig = _figure(4 * len(datasets), 4)
    axes = np.atleast_1d(fig.subplots(1, len(datasets)))
    for ax, dataset in zip(axes, datasets, strict=True):
        rows = table3[table3["dataset"] == dataset]
        labels, values, colours = [], [], []
        for _, r in rows.iterrows():
            if r["source"] == PUBLISHED_LABEL:
                if pd.notna(r["published_mre"]):
                    labels.append(str(r["method"]))
                    values.append(r["published_mre"])
                    colours.append("lightgrey")
            elif pd.notna(r.get("ours_mre")):
                labels.append(f"ours ({r['protocol']})")
                values.append(r["ours_mre"])
                colours.append("tab:green" if r["protocol"] == "zhu" else "tab:blue")
        ax.barh(labels, values, color=colours)
        unit = rows["unit"].dropna().iloc[0] if rows["unit"].notna().any() else ""
        ax.set_xlabel(f"MRE ({unit})")
        ax.set_title(dataset, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    _caption(fig, caption)
    return fig


def plot_dataset_examples(examples: list[dict], caption: str | None = None) -> Figure:
    """Figure 1: one annotated image per dataset. ``examples``: dicts with ``image`` (H, W),
    ``landmarks`` (L, 2) in that image's px and ``title``."""
    fig = _figure(4 * len(examples), 4.5)
    axes = np.atleast_1d(fig.subplots(1, len(examples)))
    for ax, ex in zip(axes, examples, strict=True):
        show_landmarks(ax, ex["image"], ex["landmarks"], None, ex["title"])
        for i, (x, y) in enumerate(np.asarray(ex["landmarks"]), start=1):
            ax.annotate(str(i), (x, y), color="yellow", fontsize=6, xytext=(2, 2),
                        textcoords="offset points")
    _caption(fig, caption)
    return fig


def plot_pipeline(stages: dict, caption: str | None = None) -> Figure:
    """Figure 2 from real arrays (see ``report.pipeline_arrays``): resized image + landmarks ->
    Gaussian targets -> augmented pair -> network output heatmaps -> decoded landmarks."""
    fig = _figure(12, 8.5)
    axes = fig.subplots(2, 3).ravel()
    axes[5].set_axis_off()
    show_landmarks(axes[0], stages["image"], stages["landmarks_grid"], None,
                   f"1. image {stages['image'].shape[0]}x{stages['image'].shape[1]} (HxW) + landmarks")
    axes[1].imshow(heatmap_overlay(stages["targets"]), cmap="magma")
    axes[1].set_title(f"2. Gaussian targets ({stages['targets'].shape[0]} maps, sigma {stages['sigma']:g})",
                      fontsize=9)
    axes[1].set_axis_off()
    show_landmarks(axes[2], stages["augmented_image"], stages["augmented_landmarks"], None,
                   "3. augmentation (drawn per read)")
    axes[2].imshow(heatmap_overlay(stages["augmented_targets"]), cmap="magma", alpha=0.4)
    axes[3].imshow(heatmap_overlay(stages["output"]), cmap="magma")
    axes[3].set_title(f"4. {stages['model']} output heatmaps", fontsize=9)
    axes[3].set_axis_off()
    show_landmarks(axes[4], stages["image"], stages["landmarks_grid"], stages["decoded"],
                   "5. decoded landmarks (x) vs truth (o)")
    _caption(fig, caption)
    return fig


def plot_landmark_errors(errors: dict[str, np.ndarray], units: dict[str, str],
                         reference: dict[str, tuple[str, np.ndarray]] | None = None,
                         caption: str | None = None) -> Figure:
    """Error versus landmark: one panel per dataset, a box per landmark (1-based) of the test
    errors ``(N, L)`` in ``units[name]``, the per-landmark mean as a dot.

    ``reference``: optional ``{name: (label, (L,) per-landmark MRE)}`` drawn as a labelled line
    on that panel (the human limit of the head: a different data source, so the label says
    which).
    """
    names = list(errors)
    fig = _figure(max(5.0, 4.5 * len(names)), 3.6)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(names))))
    for ax, name in zip(axes, names, strict=False):
        err = np.asarray(errors[name], dtype=np.float64)
        positions = np.arange(1, err.shape[1] + 1)
        ax.boxplot(list(err.T), positions=positions, widths=0.6, showfliers=True,
                   flierprops={"markersize": 2})
        ax.plot(positions, err.mean(axis=0), "o", color="tab:red", ms=3, label="model: mean")
        if reference and name in reference:
            label, values = reference[name]
            ax.plot(np.arange(1, len(values) + 1), values, "-", color="tab:green", lw=1.2, label=label)
        ax.set_xticks(positions)
        ax.tick_params(axis="x", labelsize=6)
        ax.set_xlabel("landmark (1-based)")
        ax.set_ylabel(f"radial error ({units.get(name, '')})")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    _caption(fig, caption)
    return fig


def plot_worst_gallery(examples: list[dict], titles: list[str] | None = None,
                       caption: str | None = None) -> Figure:
    """The worst predictions: per example a row of (image with ground truth (o) and prediction
    (x), worst landmark circled) and (predicted heatmaps, max over landmarks, on the image).

    ``examples``: dicts as :func:`xlm_core.report.run_examples` returns (``image`` (H, W),
    ``heatmaps`` (L, H, W), ``gt_grid``/``pred_grid`` (L, 2) grid px), optionally ``worst``
    (0-based landmark to circle).
    """
    n = max(1, len(examples))
    fig = _figure(7, 3.2 * n)
    axes = np.asarray(fig.subplots(n, 2)).reshape(n, 2)
    for k, ex in enumerate(examples):
        title = titles[k] if titles else str(ex.get("id", ""))
        show_landmarks(axes[k, 0], ex["image"], ex["gt_grid"], ex["pred_grid"], title)
        worst = ex.get("worst")
        if worst is not None:
            g, p = np.asarray(ex["gt_grid"])[worst], np.asarray(ex["pred_grid"])[worst]
            axes[k, 0].plot([g[0], p[0]], [g[1], p[1]], "-", color="yellow", lw=1)
            axes[k, 0].scatter([g[0]], [g[1]], s=120, facecolors="none", edgecolors="yellow")
        axes[k, 1].imshow(ex["image"], cmap="gray", vmin=0, vmax=1)
        axes[k, 1].imshow(heatmap_overlay(ex["heatmaps"]), cmap="magma", alpha=0.6)
        axes[k, 1].set_title("predicted heatmaps (max over landmarks)", fontsize=9)
        axes[k, 1].set_axis_off()
    if examples:
        axes[0, 0].legend(fontsize=6, loc="lower right")
    _caption(fig, caption)
    return fig


def plot_protocol_spread(table: pd.DataFrame, caption: str | None = None) -> Figure:
    """The protocol table as bars: one panel per target, MRE per decoding/protocol(/wrist pair),
    so the spread a protocol choice alone produces is visible (``report.study_protocol_table``)."""
    targets = list(dict.fromkeys(table["target"]))
    fig = _figure(max(4.0, 4.0 * len(targets)), 3.6)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(targets))))
    colours = {"clean": "tab:blue", "zhu": "tab:green"}
    for ax, target in zip(axes, targets, strict=False):
        rows = table[table["target"] == target]
        labels = [f"{d}/{p}" + (f"\nwrist {w}" if w else "")
                  for d, p, w in zip(rows["decoding"], rows["protocol"], rows["wrist_pair"], strict=True)]
        ax.bar(labels, rows["mre"], yerr=rows["mre_std"].fillna(0), capsize=3,
               color=[colours.get(p, "grey") for p in rows["protocol"]])
        ax.set_title(f"target: {target}", fontsize=9)
        ax.set_ylabel(f"MRE ({rows['unit'].iloc[0]})")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    _caption(fig, caption)
    return fig


def plot_paired_deltas(table2: pd.DataFrame, caption: str | None = None) -> Figure:
    """Table 2's paired comparisons as a forest plot: per target, each chain's mean MRE
    difference against the target trained alone (its real start, ``imagenet`` or ``scratch``)
    with its 95 % bootstrap interval; zero marked. Chains whose Holm-corrected p-value is below
    0.05 are drawn filled, the others hollow."""
    rows = table2[~table2["chain"].map(is_single_stage) & (table2["chain"] != MEAN_SHAPE)]
    starts = sorted({str(c) for c in table2["chain"] if is_single_stage(c)})
    targets = list(dict.fromkeys(rows["target"]))
    fig = _figure(max(4.0, 4.0 * len(targets)), 3.4)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(targets))))
    for ax, target in zip(axes, targets, strict=False):
        r = rows[rows["target"] == target].reset_index(drop=True)
        y = np.arange(len(r))[::-1]
        delta = r["delta_mre"].to_numpy(dtype=float)
        low = r["ci_low"].to_numpy(dtype=float)
        high = r["ci_high"].to_numpy(dtype=float)
        sig = r["p_holm"].to_numpy(dtype=float) < 0.05
        ax.errorbar(delta, y, xerr=[delta - low, high - delta], fmt="none", ecolor="tab:blue", capsize=3)
        ax.scatter(delta[sig], y[sig], color="tab:blue", zorder=3, label="Holm p < 0.05")
        ax.scatter(delta[~sig], y[~sig], facecolors="white", edgecolors="tab:blue", zorder=3,
                   label="Holm p ≥ 0.05 (or n/a)")
        ax.axvline(0.0, color="grey", ls="--", lw=1)
        ax.set_yticks(y)
        ax.set_yticklabels(r["chain"], fontsize=7)
        unit = r["unit"].dropna().iloc[0] if r["unit"].notna().any() else ""
        ax.set_xlabel(f"MRE change vs {' / '.join(starts) or 'the target'} alone ({unit}), 95 % CI")
        ax.set_title(f"target: {target}", fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    _caption(fig, caption)
    return fig


# --------------------------------------------------------------------------- cumulative point-error curves


def chain_error_curves(study: StudyInfo) -> dict[str, dict]:
    """The test errors of every transfer chain of a study, per target, for the cumulative
    point-error curves (clean protocol: each run's ``predictions.csv``, seeds stacked).

    Args:
        study: the study (:func:`~xlm_core.report.results.load_study`).

    Returns:
        ``{target: {"unit", "thresholds", "alone": label of the single-stage chain,
        "curves": {label: errors (rows, L)}, "seeds": {label: n_seeds}}}``. Labels are the
        chains with their start named as the runs' metadata says (:func:`chain_start`), e.g.
        ``scratch>hand`` where the profile's ``imagenet`` token ran from random weights.
    """
    chains = list(dict.fromkeys(chain_label(chain_before(r))
                                for r in study.runs if r.get("kind") == "transfer"))
    out: dict[str, dict] = {}
    for chain in sorted(chains, key=lambda c: (c.count(">"), chains.index(c))):
        runs = chain_runs(study, chain)
        for target, data in study_error_matrices(study, chain).items():
            starts = sorted({chain_start(study, r) for r in runs.get(target, [])}) or ["?"]
            stages = chain.split(">")
            label = ">".join(["/".join(starts), *stages[1:]])
            entry = out.setdefault(target, {"unit": data["unit"], "thresholds": data["thresholds"],
                                            "alone": None, "curves": {}, "seeds": {}})
            if len(stages) == 1:
                entry["alone"] = label
            entry["curves"][label] = data["errors"]
            entry["seeds"][label] = len(set(data["seeds"]))
    order = {"head": 0, "hand": 1, "chest": 2}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], 9)))


def human_limit_errors(study: StudyInfo, csv_dir=None) -> tuple[np.ndarray | None, str]:
    """Per-landmark errors ``(N, L)`` in mm of the senior annotator against the mean of both
    (clean protocol), from the same source :func:`xlm_core.report.human_limit_for_study` uses
    (the study's real head data, else Payer et al.'s CSVs, ISBI images 151-400).

    Args:
        study: the study (:func:`~xlm_core.report.results.load_study`).
        csv_dir: folder of Payer's ``all_senior.csv`` / ``all_junior.csv`` (None: the default place).

    Returns:
        ``(errors, source)``; ``errors`` is None when no annotations are found (``source`` says why).
    """
    from xlm_core.metrics import default_scale, errors_clean
    from xlm_core.report import analysis
    from xlm_core.report.human_limit import load_payer_mm_csv

    root = data_roots(study).get("head")
    if root and study.data_source == "real":
        from xlm_core.datasets import load_dataset

        sets = {a: load_dataset("head", str(root), annotator=a) for a in ("senior", "junior")}
        by_id = {a: {s.id: np.asarray(s.landmarks, dtype=np.float64) for s in ls.samples}
                 for a, ls in sets.items()}
        ids = [i for i in sets["senior"].test_ids if i in by_id["senior"] and i in by_id["junior"]]
        if ids:
            senior = np.stack([by_id["senior"][i] for i in ids])
            junior = np.stack([by_id["junior"][i] for i in ids])
            return (errors_clean(senior, (senior + junior) / 2, sets["senior"].scale),
                    f"real ISBI annotations (the head dataset at {root}), test split")
    folder = analysis.find_payer_csv_dir(csv_dir)
    if folder is None:
        return None, "no human-limit data (Payer et al.'s CSVs not found)"
    ids, senior = load_payer_mm_csv(folder / "all_senior.csv")
    junior_ids, junior = load_payer_mm_csv(folder / "all_junior.csv")
    index = {i: k for k, i in enumerate(ids)}
    keep = [index[i] for i in analysis.ISBI_TEST_IDS if i in index]
    if ids != junior_ids or not keep:
        return None, f"no human-limit data ({folder}: the two CSVs do not pair on images 151-400)"
    senior, junior = senior[keep], junior[keep]
    return errors_clean(senior, (senior + junior) / 2, default_scale("head")), analysis.PAYER_SOURCE


def _cpe_axes(ax, errors: np.ndarray, **style) -> float:
    from xlm_core.metrics import cumulative_errors

    d, pct = cumulative_errors(errors)
    ax.step(np.concatenate([[0.0], d]), np.concatenate([[0.0], pct]), where="post", **style)
    return float(np.percentile(d, 98))


HUMAN_STYLE = {"color": "dimgrey", "ls": "--", "lw": 1.2}


def _cpe_finish(ax, entry: dict, right: float, title: str, short: bool = False) -> None:
    for t in entry.get("thresholds") or []:
        ax.axvline(float(t), color="lightgrey", lw=0.8, ls=":", zorder=0)
    ax.set_xlim(0.0, right)
    ax.set_ylim(0.0, 100.0)
    unit = entry.get("unit", "")
    ax.set_xlabel(f"radial error ({unit})" if short
                  else f"radial error ({unit}); axis ends at the 98th percentile")
    ax.set_ylabel("landmarks within (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="lower right")


def plot_cpe_curves(curves: dict[str, dict], human: tuple[np.ndarray, str] | None = None,
                    caption: str | None = None) -> Figure:
    """Cumulative point-error curves: one panel per target, the share of test landmarks within
    each distance for every chain (the single-stage chain thick and black), SDR thresholds as
    dotted lines, and on the head panel the human limit (an annotator against the mean of both).

    Args:
        curves: :func:`chain_error_curves`'s result.
        human: ``(errors (N, L) in mm, source)`` of :func:`human_limit_errors`, or None.
        caption: the profile / data / protocol line.

    Returns:
        The figure.
    """
    targets = list(curves)
    fig = _figure(max(5.0, 4.5 * len(targets)), 3.8)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(targets))))
    for ax, target in zip(axes, targets, strict=False):
        entry = curves[target]
        right = 0.0
        for label, errors in entry["curves"].items():
            n = entry["seeds"].get(label, 1)
            alone = label == entry["alone"]
            right = max(right, _cpe_axes(
                ax, errors, label=f"{label} ({n} seed{'s' if n != 1 else ''})",
                color="black" if alone else None, lw=2.0 if alone else 1.0, zorder=3 if alone else 2))
        if human is not None and human[0] is not None and target == "head":
            right = max(right, _cpe_axes(ax, human[0], label=f"human limit: senior vs mean ({human[1]})",
                                         **HUMAN_STYLE))
        _cpe_finish(ax, entry, right or 1.0, f"target: {target}")
    _caption(fig, caption)
    return fig


def plot_cpe_against_alone(curves: dict[str, dict], human: tuple[np.ndarray, str] | None = None,
                           caption: str | None = None) -> Figure:
    """Cumulative point-error curves, each chain against the single-stage chain: a row per
    target, a panel per other chain (its curve in colour, the single-stage chain in black, the
    human limit dashed on head panels). Each x axis ends at the 98th percentile of its curves.

    Args:
        curves: :func:`chain_error_curves`'s result.
        human: ``(errors (N, L) in mm, source)`` of :func:`human_limit_errors`, or None.
        caption: the profile / data / protocol line.

    Returns:
        The figure.
    """
    targets = list(curves)
    others = {t: [c for c in curves[t]["curves"] if c != curves[t]["alone"]] for t in targets}
    n_cols = max([1] + [len(v) for v in others.values()])
    fig = _figure(3.0 * n_cols, 2.8 * max(1, len(targets)))
    axes = np.asarray(fig.subplots(max(1, len(targets)), n_cols, squeeze=False))
    for row, target in enumerate(targets):
        entry = curves[target]
        alone = entry["alone"]
        for col in range(n_cols):
            ax = axes[row, col]
            if col >= len(others[target]):
                ax.set_axis_off()
                continue
            chain = others[target][col]
            right = 0.0
            if alone is not None:
                right = _cpe_axes(ax, entry["curves"][alone], color="black", lw=1.4, label=alone)
            right = max(right, _cpe_axes(ax, entry["curves"][chain], color="tab:blue", lw=1.4,
                                         label=chain))
            if human is not None and human[0] is not None and target == "head":
                right = max(right, _cpe_axes(ax, human[0], label="human limit (senior vs mean)",
                                             **HUMAN_STYLE))
            _cpe_finish(ax, entry, right or 1.0, f"{target}: {chain}", short=True)
    _caption(fig, caption)
    return fig
