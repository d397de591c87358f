# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Beyond the paper: uncertainty, the human limit, protocols, failures
#
# The paper's conclusion rests on one training run per chain and no uncertainty. This notebook
# adds what that conclusion needs: paired statistics over seeds and test images, the
# inter-observer limit under the head numbers, the same predictions scored under every
# evaluation convention in use, and where the errors come from (per landmark, worst images).
# Every table and figure names the profile and the data it comes from.

# %% tags=["parameters", "hide-input"]
results_dir = "results/demo"
study = "demo"
# folder of Payer et al. head CSVs (empty: the study setting, else ../shared/data/head/payer_setup)
human_limit_csv_dir = ""
# images in the gallery of worst predictions
worst_k = 3

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from xlm_core import XLMError, report
from xlm_core.report import analysis, plots

pd.set_option("display.precision", 3)
pd.set_option("display.max_colwidth", None)
info = report.load_study(results_dir)
display(Markdown(f"*{info.label()}*"))

# %% [markdown]
# ## 1. Paired statistics: does a chain change the error?
#
# For each target, each chain is compared with ImageNet -> target on the same test images:
# per-image MRE averaged over seeds, the mean difference (chain minus ImageNet; negative = the
# chain helps) with a 95 % percentile bootstrap interval, and a Wilcoxon signed-rank p-value,
# Holm-corrected over the chains of that target. The sentences below are generated from the
# numbers (`report.transfer_verdicts`), never typed.

# %% tags=["hide-input"]
table2 = report.transfer_table(info, protocol="clean")
caption = info.label("clean", "test split")
stats_cols = ["target", "chain", "n_seeds", "n_images", "mre", "mre_std", "unit", "delta_mre",
              "ci_low", "ci_high", "p_value", "p_holm"]
paired = table2[table2["chain"] != report.MEAN_SHAPE][stats_cols]
display(Markdown(f"**Paired comparison with the target trained alone** ({caption}). The chain's "
                 "first token is what its first stage started from (`scratch`: no ImageNet weights)."))
for target, rows in paired.groupby("target", sort=False):
    display(report.show_table(report.display_table(rows, ["target", "chain"], sdr_std=False)))
display(Markdown(report.verdicts_markdown(table2, info)))

# %% tags=["hide-input"] mystnb={"image": {"alt": "Paired MRE difference of each transfer chain against the target trained alone, with 95 percent bootstrap intervals"}}
if table2["delta_mre"].notna().any():
    plots.show(plots.plot_paired_deltas(table2, caption=f"Paired differences: {caption}"))
else:
    display(Markdown("*No paired differences to plot (per-image errors missing).*"))

# %% [markdown]
# The same comparison as distributions: each chain's cumulative point-error curve (share of test
# landmarks within each distance, all seeds pooled, clean protocol, from the runs'
# `predictions.csv`) against the single-stage chain's (black). A chain that helps lies above
# and to the left. The chains' first token says what the first stage started from, as the
# runs' configuration records it (`scratch`: random initialisation, `imagenet`: ImageNet
# weights). Each x axis ends at the 98th percentile of its curves. On head panels, dashed: the
# human limit (the senior annotator against the mean of
# both, real ISBI annotations).

# %% tags=["hide-input"] mystnb={"image": {"alt": "Cumulative point-error curves of each chain against the target trained alone, per target dataset"}}
cpe_csv_dir = human_limit_csv_dir or info.settings.get("human_limit_csv_dir") or None
try:
    curves = plots.chain_error_curves(info)
except XLMError as exc:
    curves = {}
    display(Markdown(f"*No cumulative error curves: {exc}.*"))
cpe_human = plots.human_limit_errors(info, cpe_csv_dir) if "head" in curves else (None, "")
if cpe_human[0] is None and "head" in curves:
    display(Markdown(f"*Head panels without the human limit: {cpe_human[1]}.*"))
if curves:
    plots.show(plots.plot_cpe_against_alone(
        curves, human=cpe_human if cpe_human[0] is not None else None,
        caption=f"Cumulative point error, each chain against the single-stage chain: {caption}"))

# %% [markdown]
# ## 2. The human limit (head)
#
# The head ground truth is the mean of two annotators. One annotator scored against that mean
# (and the junior against the senior) with the same metrics is a floor no model can be
# expected to beat by much. These rows come from real ISBI annotations; the model rows from
# the study's data: the `source` column says which, and they are never pooled.

# %% tags=["hide-input"]
csv_dir = human_limit_csv_dir or info.settings.get("human_limit_csv_dir") or None
human_rows, human_source = report.human_limit_for_study(info, csv_dir)
human = None
if human_rows is None:
    display(Markdown(f"*{human_source}.*"))
else:
    human = analysis.human_limit_frame(human_rows, human_source)
    display(Markdown(f"**Inter-observer limit** (source: {human_source}; clean protocol, mm)"))
    display(report.show_table(report.readable_columns(human.drop(columns=["source", "protocol", "unit"]),
                                                      "mm"), digits=3,
                              notes=[("senior vs mean and junior vs mean are equal by construction: the "
                                     "mean lies halfway between the two annotations, so each annotator is "
                                     "half the senior-junior distance from it.")]))
    if "head" in set(table2["target"]):
        beside = report.models_beside_human(table2, human, info)
        display(Markdown(f"**Head models beside the human limit** (models: {caption}; "
                         f"annotators: {human_source})"))
        display(report.show_table(report.display_table(beside, ["who", "source", "n_images"], digits=3,
                                                       sdr_std=False).rename(columns={"n_images": "n images"})))

# %% [markdown]
# ## 3. Protocols side by side
#
# The same predictions of each ImageNet -> target run (decoded grid coordinates persisted in
# `predictions_grid.npz`) scored under every convention in use: integer argmax against
# sub-pixel decoding, the `clean` protocol (errors in the original image) against `zhu`
# (integer positions on the resized grid), and for the hand the two wrist pairs (Payer's
# 1-based 2,6 against Zhu's 1,5). `mre_change_pct` is the change against sub-pixel / clean /
# Payer's pair: how much of a published difference the evaluation alone can produce.

# %% tags=["hide-input"] mystnb={"image": {"alt": "The same predictions scored under each protocol and decoder: MRE per dataset side by side"}}
protocols = report.study_protocol_table(info, chain="imagenet")
if protocols.empty:
    display(Markdown("*No run of this study has persisted grid predictions "
                     "(`predictions_grid.npz`): retrain or re-evaluate to fill this table.*"))
else:
    for target, rows in protocols.groupby("target", sort=False):
        rows = rows.dropna(axis=1, how="all")
        display(Markdown(f"**{target}**, {report.alone_label(info, target)}>{target}, "
                         "same predictions under each protocol; "
                         f"{rows['n_images'].iloc[0]} test images, mean over {rows['n_seeds'].iloc[0]} "
                         f"seed(s), unit {rows['unit'].iloc[0]} ({info.label(evaluated_on='test split')})"))
        shown, notes = report.protocol_display(rows)
        display(report.show_table(shown, notes=notes))
    spread = (protocols.groupby("target", sort=False)["mre_change_pct"]
              .agg(lambda v: float(np.nanmax(v) - np.nanmin(v))))
    display(Markdown("Spread of MRE across conventions (max minus min of `mre_change_pct`): " + ", ".join(
        f"{t} {v:.1f} %" for t, v in spread.items()) + "."))
    plots.show(plots.plot_protocol_spread(
        protocols, caption=f"Same predictions, each protocol: {info.label(evaluated_on='test split')}"))

# %% [markdown]
# ## 4. Per landmark
#
# Per-landmark MRE and SDR of ImageNet -> target (test errors of every seed pooled, clean
# protocol). In the error-versus-landmark figure the head panel also shows the annotators'
# per-landmark disagreement (one annotator against the mean of both) when available: a line
# from a different data source, labelled as such.

# %% tags=["hide-input"] mystnb={"image": {"alt": "Mean radial error per landmark for each dataset, one bar per landmark number"}}
per_landmark = report.per_landmark_tables(info, chain="imagenet")
matrices = report.study_error_matrices(info, chain="imagenet")
if per_landmark.empty:
    display(Markdown("*No finished ImageNet -> target run with predictions.*"))
else:
    for target, rows in per_landmark.groupby("target", sort=False):
        rows = rows.dropna(axis=1, how="all")
        display(Markdown(f"**{target}** per landmark, unit {rows['unit'].iloc[0]}, "
                         f"{rows['n_rows'].iloc[0]} test errors per landmark ({rows['n_seeds'].iloc[0]} "
                         f"seed(s) pooled) ({caption})"))
        display(report.show_table(report.readable_columns(rows.drop(
            columns=["profile", "data_source", "chain", "target", "name", "n_seeds", "n_rows", "unit"]),
            rows["unit"].iloc[0]), digits=3))
    reference = {}
    if human_rows is not None and "head" in matrices:
        per_lm = analysis.human_per_landmark(human_rows)
        if len(per_lm) == matrices["head"]["errors"].shape[1]:
            reference["head"] = (f"annotator vs mean ({human_source})", per_lm)
    plots.show(plots.plot_landmark_errors(
        {t: m["errors"] for t, m in matrices.items()}, {t: m["unit"] for t, m in matrices.items()},
        reference=reference, caption="Error versus landmark, "
        + ", ".join(f"{report.alone_label(info, t)}>{t}" for t in matrices) + f": {caption}"))

# %% [markdown]
# ## 5. The worst predictions
#
# The images with the largest MRE (first seed's ImageNet -> target run), each with its ground
# truth (o), prediction (x), the worst landmark joined to its truth, and the predicted
# heatmaps: the model is loaded from the run's checkpoint and run on these images only.

# %% tags=["hide-input"] mystnb={"image": {"alt": "The worst test images of each dataset with predicted heatmaps, ground truth and predicted landmarks"}}
runs = report.chain_runs(info, chain="imagenet")
for target, target_runs in runs.items():
    run = target_runs[0]
    path = report.run_dir(results_dir, run["run_id"])
    if not (path / "checkpoint.pt").is_file() or not (path / "predictions.csv").is_file():
        display(Markdown(f"*{target}: run {run['run_id']} has no checkpoint or predictions.*"))
        continue
    ids, errors = analysis.read_error_matrix(path / "predictions.csv", split="test")
    worst = analysis.worst_predictions(errors, ids, k=int(worst_k), by="image")
    unit = report.load_metrics(path / "metrics.json")["unit"]
    display(Markdown(f"**{target}**: worst test images of run `{run['run_id']}` (seed "
                     f"{run.get('seed', 0)}; errors in {unit}; {caption})"))
    display(report.show_table(report.readable_columns(worst, unit), digits=3))
    examples = report.run_examples(path, list(worst["image_id"]))
    for ex, (_, w) in zip(examples, worst.iterrows()):
        ex["worst"] = int(w["worst_landmark"]) - 1
    titles = [f"{w.image_id}: MRE {w.mre:.2f} {unit}, worst landmark {w.worst_landmark} "
              f"({w.max_error:.2f} {unit})" for w in worst.itertuples()]
    plots.show(plots.plot_worst_gallery(examples, titles,
                                        caption=f"Worst predictions, {report.alone_label(info, target)}"
                                                f">{target}: {caption}"))
