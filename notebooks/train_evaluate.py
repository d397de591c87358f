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
# # One run: train and evaluate
#
# This notebook is one run of the study, executed by the study runner with papermill: the
# parameter `config` below is injected from the study profile (`studies/<profile>.yaml`, the
# single source of truth) as the run's `xlm_core.config.RunConfig` in JSON form
# (`RunConfig.to_dict()`), beside the run's identity. A single field may be passed alone
# (`papermill ... -p epochs 2`): it wins over the value in `config`. The defaults here only make
# the notebook importable. It trains with `xlm_core.training.train_and_evaluate`, which writes
# `checkpoint.pt`, `history.csv`, `predictions.csv` and `metrics.json` into `out` (resuming from
# a checkpoint when present).

# %% tags=["parameters", "hide-input"]
config = {}  # xlm_core.config.RunConfig.to_dict(): every field of the run (sizes as lists)
run_id = ""
study = ""
profile_note = ""

# %% tags=["hide-input"]
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from xlm_core import report
from xlm_core.config import RunConfig, field_names
from xlm_core.report import plots

report.quiet_imports()  # torch & co. once, without tqdm's "IProgress not found" notice

# a RunConfig field given alone (papermill -p NAME VALUE) wins over its value in config
given = {name: value for name, value in globals().items() if name in field_names()}
cfg = RunConfig.from_dict({**config, **given})

display(Markdown(f"**Run `{run_id}`** of study `{study}` ({profile_note}): {cfg.arch}/{cfg.encoder} "
                 f"on `{cfg.dataset}`, init: `{cfg.init or cfg.encoder_weights}`"
                 + (f", CV fold {cfg.fold} of {cfg.folds}" if cfg.folds else "") + f", seed {cfg.seed}."))

# %% tags=["hide-input"]
# NBVAL_IGNORE_OUTPUT
# (training prints progress and timings; re-executed, it only reports the finished run)
from xlm_core.training import train_and_evaluate

metrics = train_and_evaluate(cfg)

# %% [markdown]
# ## Scores
#
# Model beside the mean-shape baseline (the mean training shape placed on the same images,
# scored with the same protocol), for each split and protocol.

# %% tags=["hide-input"]
label = f"{study} ({profile_note}); data: {metrics.get('data_source')}; unit: {metrics['unit']} ({metrics.get('scale')})"
display(Markdown(f"*{label}*"))
display(report.run_scores_table(metrics).round(3))

# %% [markdown]
# ## Training curves

# %% tags=["hide-input"] mystnb={"image": {"alt": "Training and validation loss per epoch of this run, and its learning rate"}}
history = pd.read_csv(Path(cfg.out) / "history.csv")
plots.show(plots.plot_history(history, caption=f"run {run_id}: {label}"))

# %% [markdown]
# ## Predicted heatmaps and landmarks on a test image

# %% tags=["hide-input"] mystnb={"image": {"alt": "A test image with the predicted heatmaps, ground-truth and predicted landmarks of this run"}}
example = report.run_example(cfg.out, index=0)
plots.show(plots.plot_prediction(example["image"], example["heatmaps"], example["gt_grid"],
                                 example["pred_grid"],
                                 caption=f"test image {example['id']} on the {example['grid_hw']} grid; {label}"))

# %% [markdown]
# ## Error per landmark (test split, clean protocol)

# %% tags=["hide-input"] mystnb={"image": {"alt": "Test mean radial error of each landmark of this run"}}
score = metrics["test"]["clean"]
plots.show(plots.plot_per_landmark({"model": score["per_landmark_mre"]}, score["unit"],
                                   caption=f"mean-shape baseline MRE: {score['mean_shape_mre']:.3g} {score['unit']}; {label}"))

# %% [markdown]
# ## What the initial checkpoint transferred

# %% tags=["hide-input"]
display(report.transfer_report_table(metrics))
