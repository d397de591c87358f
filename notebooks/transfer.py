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
# # Table 2: transfer chains
#
# For every target dataset T and the other two datasets A and B, the paper's five chains end in T:
# ImageNet -> T, ImageNet -> A -> T, ImageNet -> B -> T, ImageNet -> A -> B -> T and
# ImageNet -> B -> A -> T. `chain` lists the stages before the target (`imagenet>hand` =
# ImageNet, then hand, then the target). Its first token names what the first stage really
# started from, read from the runs' recorded `encoder_weights` and transfer reports:
# `imagenet` only where ImageNet weights were loaded, `scratch` for random initialisation.
# Each stage trains on its dataset's full training split (the early-stopping set carved out of
# it) and the target is scored on its test split. Mean and standard deviation over seeds.
#
# A chain trains longer than the target alone (two or three stages), so "the chain helps" may
# only mean "more training". Two controls (not in the paper) separate the two. The **compute
# control**, `imagenet>T (steps of imagenet>A>T)`: the target trained alone, from ImageNet, in
# **one** schedule for as many optimiser steps as the whole chain (the `steps` column): what
# the chain's compute buys without the other x-rays. The **matched control**: the target
# trained alone for as many stages (`T>T`, `T>T>T`, each stage with the settings a chain's
# stage on T gets), its warm-up and cosine schedule restarted at each stage. It measures the
# restarts as well as the length: on real cephalograms a restarted second stage scored worse
# than one stage (+0.56 px, docs/decisions.md), so a chain that beats it may only have avoided
# a restart; read the compute control first. The second
# table of each target holds the paired comparisons, on the same test images: each chain
# against the target alone (`Δ MRE`, its 95 % bootstrap interval, the Wilcoxon signed-rank
# p-value after Holm's correction over the chains of that target) and against its matched
# control (`Δ vs control`, Holm p likewise). The verdict sentences under the tables are
# generated from these columns, with the best row against the runner-up.

# %% tags=["parameters", "hide-input"]
results_dir = "results/demo"
study = "demo"

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import Markdown, display

from xlm_core import XLMError, report
from xlm_core.report import plots

info = report.load_study(results_dir)
table2 = report.transfer_table(info, protocol="clean")
report.write_table(table2, Path(results_dir) / "table2_transfer.csv")
caption = info.label("clean", "test split")
display(Markdown(f"**Table 2** ({caption})."))

# %% tags=["hide-input"]
for target, rows in table2.groupby("target", sort=False):
    display(Markdown(f"**target: {target}** (unit {rows['unit'].iloc[0]}, SDR thresholds "
                     f"{rows['thresholds'].iloc[0]}; test grid {rows['grid_hw'].iloc[0]})"))
    shown = report.display_table(rows, ["chain"], digits=2, sdr_std=False)
    paired = [c for c in shown.columns if c.startswith(("Δ", "95 %", "Holm p"))]
    scores = shown.drop(columns=paired)
    notes = ["steps: optimiser steps of all the chain's stages (mean over seeds)."] if "steps" in scores else []
    display(report.show_table(scores, notes=notes))
    if paired:
        notes = ["Δ MRE, 95 % CI, Holm p: against the target trained alone (the single-stage row)."]
        if "Holm p vs control" in paired:
            notes.append("Δ vs control, Holm p vs control: against the matched control with as many "
                         "stages on the target alone (the rows whose every stage is the target); a "
                         "control itself, the single-stage row and the mean-shape row have none.")
        display(report.show_table(shown[["chain", *paired]], notes=notes))

# %% [markdown]
# ## What ImageNet buys, what the other x-rays buy after it, and what is only longer training
#
# The chains above mix two things: where a network starts (ImageNet or random weights) and how
# long it trains (one stage or several). The `scratch` rows (not in the paper;
# `transfer.scratch_control` in the profile) train the single stage and the matched control
# again from random weights with the same settings and steps. Per target, on the same test
# images: ImageNet against random weights at one stage and at as many stages as the longest
# chain; each chain through the other datasets against its compute control (the target alone
# for as many steps, one schedule), against the target alone for the chain's target steps, and
# against its matched control (same start, same number of stages, the target alone); and
# several stages against one, from ImageNet and from scratch. `Δ MRE` is the row's chain minus the reference (negative: the chain is better), its
# 95 % bootstrap interval over test images, Wilcoxon signed-rank p after Holm's correction over
# the rows of one target.

# %% tags=["hide-input"]
questions = report.questions_table(table2, info, protocol="clean")
report.write_table(questions, Path(results_dir) / "table2_questions.csv")
display(Markdown(f"**Paired comparisons** ({caption})."))
for target, rows in questions.groupby("target", sort=False):
    unit = rows["unit"].iloc[0]
    shown = report.questions_display(rows)
    display(Markdown(f"**target: {target}** (unit {unit})"))
    display(report.show_table(shown, notes=[
        f"Δ MRE: chain minus vs, in {unit}; MRE: chain / vs; Holm over the {len(rows)} rows of {target}.",
        "ImageNet: ImageNet against random weights (one stage; as many stages as the longest chain). "
        "Other x-rays: each chain through the other datasets against the target alone for as many "
        "steps in one schedule (equal compute), against the target alone for the chain's target "
        "steps, and against the matched control of as many restarted stages. Longer training: the "
        "longest stages on the target against one stage."]))
display(Markdown(report.questions_markdown(questions)))

# %% [markdown]
# ## Verdicts (generated from the paired statistics)

# %% tags=["hide-input"]
display(Markdown(report.verdicts_markdown(table2, info)))

# %% tags=["hide-input"] mystnb={"image": {"alt": "Table 2 as a chart: test MRE of each transfer chain per target, with the matched control and the mean-shape baseline"}}
plots.show(plots.plot_transfer(table2, caption=f"Table 2: {caption}"))

# %% [markdown]
# ## Cumulative point-error curves
#
# The share of test landmarks within each distance of the truth (the field's standard figure),
# for every chain ending in the target, all seeds' runs pooled, drawn from the runs'
# `predictions.csv` (clean protocol). The single-stage chain is the thick black line. The first
# token names what the first stage actually started from, as the runs' configuration records it:
# `imagenet` for ImageNet weights, `scratch` for random initialisation (the tables' `imagenet`
# token when the profile sets `encoder_weights: none`, as the demo does), else the weights
# file. Dotted lines: the SDR thresholds. On the head panel, dashed: the human limit, the senior
# annotator against the mean of both annotators (real ISBI annotations; for a synthetic study a
# different data source, named in the legend).

# %% tags=["hide-input"] mystnb={"image": {"alt": "Cumulative point-error curves of each transfer chain per target, with the human limit where known"}}
csv_dir = info.settings.get("human_limit_csv_dir") or None
try:
    curves = plots.chain_error_curves(info)
except XLMError as exc:
    curves = {}
    display(Markdown(f"*No cumulative error curves: {exc}.*"))
human = plots.human_limit_errors(info, csv_dir) if "head" in curves else (None, "")
if human[0] is None and "head" in curves:
    display(Markdown(f"*Head panel without the human limit: {human[1]}.*"))
if curves:
    plots.show(plots.plot_cpe_curves(curves, human=human if human[0] is not None else None,
                                     caption=f"Cumulative point error per chain: {caption}"))

# %% [markdown]
# The paper's Table 2 (real data, ImageNet weights), labelled as published figures:

# %% tags=["hide-input"]
published = report.load_literature().query("table == 2")
display(Markdown(f"*{report.PUBLISHED_LABEL}*"))
display(report.show_table(report.display_table(published, ["dataset", "chain"])))
