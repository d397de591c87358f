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
# # Table 3: beside the state of the art
#
# The published figures are copied from Di Via et al. 2024 (Table 3 there, which cites each
# method's paper); they are not recomputed here. Our rows are the ImageNet -> target runs of
# this study, under both protocols: `zhu` is the one comparable with Zhu et al. 2021 and the
# methods that share its evaluation code; `clean` measures errors in the original image. The
# two kinds of numbers sit in different columns (`published_*` and `ours_*`) and never mix.

# %% tags=["parameters", "hide-input"]
results_dir = "results/demo"
study = "demo"

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import Markdown, display

from xlm_core import plots, report

info = report.load_study(results_dir)
table3 = report.sota_table(results_dir)
report.write_table(table3, Path(results_dir) / "table3_sota.csv")
display(Markdown(f"**Table 3**. Published rows: *{report.PUBLISHED_LABEL}*. "
                 f"Our rows: {info.label()}."))

# %% tags=["hide-input"]
columns = ["dataset", "method", "source", "protocol", "unit", "thresholds",
           "published_mre", "published_sdr_t1", "published_sdr_t2", "published_sdr_t3",
           "published_sdr_t4", "ours_mre", "ours_mre_std", "ours_sdr_t1", "ours_sdr_t2",
           "ours_sdr_t3", "ours_sdr_t4", "n_seeds"]
for dataset, rows in table3.groupby("dataset", sort=False):
    display(Markdown(f"**{dataset}**"))
    display(rows[[c for c in columns if c in rows]].round(2).reset_index(drop=True))

# %% tags=["hide-input"]
plots.show(plots.plot_sota(table3, caption=f"Table 3: grey = {report.PUBLISHED_LABEL}; "
                                           f"colour = this study ({info.label()})"))
