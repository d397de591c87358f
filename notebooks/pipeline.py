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
# # The method, from real arrays
#
# Figure 2 is drawn from the arrays the training code itself produces, not from a diagram: one
# training image is resized to the training grid (its landmarks mapped with the pixel-centre
# convention), encoded as one Gaussian heatmap per landmark, augmented (random affine and
# brightness/contrast, parameters drawn per read), passed through the network and decoded back
# to landmarks. When the study has a finished ImageNet -> target run, its checkpoint is used;
# otherwise an untrained network of the profile's architecture (said in the panel title).

# %% tags=["parameters", "hide-input"]
results_dir = "results/demo"
study = "demo"
dataset = None  # None: the dataset of the study's first ImageNet -> target run

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from xlm_core import report
from xlm_core.report import plots

info = report.load_study(results_dir)
run = report.pick_run(info, "transfer", dataset=dataset, chain="imagenet")
if run is None:  # no finished transfer run: any run's settings, untrained network
    run = report.pick_run(info, "transfer", dataset=dataset, chain=None, require_checkpoint=False)
cfg = run["config"]
checkpoint = report.run_dir(results_dir, run["run_id"]) / "checkpoint.pt"
stages = report.pipeline_arrays(
    cfg["dataset"], cfg["root"], size_hw=tuple(cfg.get("train_size", (128, 128))),
    sigma=float(cfg.get("sigma", 2.0)), arch=cfg.get("arch", "unetplusplus"),
    encoder=cfg.get("encoder", "vgg19"), loss=cfg.get("loss", "mse"),
    checkpoint=checkpoint if checkpoint.is_file() else None, seed=int(cfg.get("seed", 0)),
    **(cfg.get("extra") or {}),
)
display(Markdown(f"*{info.label()}; image `{stages['id']}` of `{cfg['dataset']}`, "
                 f"model: {stages['model']} (run `{run['run_id']}`)*"))

# %% tags=["hide-input"] mystnb={"image": {"alt": "The pipeline drawn from the code's arrays: image, resized grid, target heatmaps, predicted heatmaps, decoded landmarks"}}
plots.show(plots.plot_pipeline(stages, caption=f"Figure 2: {info.label()}"), dpi=72)
