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
# For every target dataset T and the other two datasets A and B, five chains end in T:
# ImageNet -> T, ImageNet -> A -> T, ImageNet -> B -> T, ImageNet -> A -> B -> T and
# ImageNet -> B -> A -> T. `chain` lists the stages before the target (`imagenet>hand` =
# ImageNet, then hand, then the target). Each stage trains on its dataset's full training split
# (the early-stopping set carved out of it) and the target is scored on its test split. Mean and
# standard deviation over seeds. The paired columns compare each chain with ImageNet -> T on
# the same test images: `delta_mre` = chain minus ImageNet (negative: the chain helps), its 95 %
# bootstrap interval, the Wilcoxon signed-rank p-value and Holm's correction over the chains of
# that target. The verdict sentences under the tables are generated from these columns.

# %% tags=["parameters", "hide-input"]
results_dir = "results/demo"
study = "demo"

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import Markdown, display

from xlm_core import plots, report

info = report.load_study(results_dir)
table2 = report.transfer_table(results_dir, protocol="clean")
report.write_table(table2, Path(results_dir) / "table2_transfer.csv")
caption = info.label("clean", "test split")
display(Markdown(f"**Table 2** ({caption})."))

# %% tags=["hide-input"]
for target, rows in table2.groupby("target", sort=False):
    display(Markdown(f"**target: {target}** (unit {rows['unit'].iloc[0]}, SDR thresholds "
                     f"{rows['thresholds'].iloc[0]})"))
    display(report.display_table(rows, ["chain"], digits=2, sdr_std=False))

# %% [markdown]
# ## Verdicts (generated from the paired statistics)

# %% tags=["hide-input"]
display(Markdown(report.verdicts_markdown(table2, info)))

# %% tags=["hide-input"]
plots.show(plots.plot_transfer(table2, caption=f"Table 2: {caption}"))

# %% [markdown]
# The paper's Table 2 (real data, ImageNet weights), labelled as published figures:

# %% tags=["hide-input"]
published = report.load_literature().query("table == 2")
display(Markdown(f"*{report.PUBLISHED_LABEL}*"))
display(report.display_table(published, ["dataset", "chain"]))
