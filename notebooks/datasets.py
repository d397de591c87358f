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
# # The three datasets
#
# Figure 1: one annotated image of each dataset the study used, read with the same loaders the
# training uses (ground truth as green circles, landmark numbers 1-based), then the counts,
# splits, units and evaluation sizes. Which data the study ran on (the real datasets or the
# synthetic phantoms written in their on-disk layout) is said in each row.

# %% tags=["parameters", "hide-input"]
results_dir = "results/demo"
study = "demo"

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from xlm_core import report
from xlm_core.report import plots

info = report.load_study(results_dir)
roots = report.data_roots(info)
examples, counts = report.dataset_examples(roots, **report.data_options(info))
display(Markdown(f"*{info.label()}*"))

# %% tags=["hide-input"] mystnb={"image": {"alt": "Example images of the three datasets with their ground-truth landmarks numbered"}}
plots.show(plots.plot_dataset_examples(examples, caption=f"Figure 1: {info.label()}"))

# %% tags=["hide-input"]
sizes = report.run_sizes(info)
display(Markdown(f"**Datasets** ({info.label()}). Image sizes and the wrist pair are those the "
                 "study's runs recorded; a dataset no run finished on shows `—`."))
shown, notes = report.datasets_display(counts, sizes)
display(report.show_table(shown, notes=notes))

# %% [markdown]
# The paper's datasets: HEAD (ISBI 2015, 400 cephalograms, 19 landmarks, 0.1 mm/px, 150 train /
# 250 test), HAND (Digital Hand Atlas, 909 images with Payer et al.'s 37 landmarks, mm via a
# 50 mm wrist width, 609 / 300) and CHEST (Shenzhen, 279 images with Zhu et al.'s 6 landmarks,
# pixels, 229 / 50). The demo profile writes synthetic phantoms in exactly these on-disk
# layouts, so the same loaders read both.
