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
# # Table 1: architectures and encoders
#
# Every architecture x encoder pair of the study's profile (the paper's: U-Net, U-Net++ and
# DeepLabV3 x EfficientNet-B7, ResNeXt101_32x8d and VGG19, DeepLabV3 cannot take VGG19) trained
# on the backbone dataset with k-fold cross-validation. `start` names what the pair's runs
# really started from, read from each run's record: `imagenet` only where ImageNet weights were
# loaded, `scratch` for random initialisation. Each fold is scored on its **held-out part**; the early
# stopping set is carved out of the fold's training part, so the held-out part never steers
# training. Mean and standard deviation (ddof = 1) over folds. The mean-shape row places the
# mean training shape on each held-out image: a model must beat it to have learnt anything.

# %% tags=["parameters", "hide-input"]
results_dir = "results/demo"
study = "demo"

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import Markdown, display

from xlm_core import report
from xlm_core.report import plots

info = report.load_study(results_dir)
table1 = report.backbone_table(info, protocol="clean")
report.write_table(table1, Path(results_dir) / "table1_backbones.csv")
caption = info.label("clean", "held-out CV folds")
display(Markdown(f"**Table 1** ({caption})."))

# %% tags=["hide-input"]
display(report.show_table(report.display_table(table1, ["arch", "encoder", "start"])))
published = report.load_literature().query("table == 1")
not_run = sorted(set(zip(published["arch"], published["encoder"])) - set(zip(table1["arch"], table1["encoder"])))
if not_run:
    display(Markdown("Pairs of the paper's Table 1 that this profile does not train: "
                     + ", ".join(f"{a}/{e}" for a, e in not_run)
                     + f" (`studies/{study}.yaml` says why)."))

# %% tags=["hide-input"] mystnb={"image": {"alt": "Table 1 as a chart: test MRE of each architecture and encoder pair over the folds, with the mean-shape baseline"}}
plots.show(plots.plot_backbones(table1, caption=f"Table 1: {caption}"))

# %% [markdown]
# The same runs under the `zhu` protocol (integer argmax on the resized grid, Zhu et al.'s
# conventions), never mixed with the clean numbers above:

# %% tags=["hide-input"]
table1_zhu = report.backbone_table(info, protocol="zhu")
display(Markdown(f"*{info.label('zhu', 'held-out CV folds')}*"))
display(report.show_table(report.display_table(table1_zhu, ["arch", "encoder", "start"])))

# %% [markdown]
# For comparison, the paper's Table 1 (real HAND data, 5-fold CV, ImageNet weights), labelled
# as published figures and kept apart from our numbers:

# %% tags=["hide-input"]
display(Markdown(f"*{report.PUBLISHED_LABEL}*"))
display(report.show_table(report.display_table(published, ["arch", "encoder"])))
