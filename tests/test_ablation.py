"""The ablation section of a profile (runs of kind "ablation"), per-stage transfer settings,
execution settings, and xlm_core.report.ablation reading the runs back (fake run folders, no training)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from xlm_core import XLMError
from xlm_core.report import ablation, load_study
from xlm_core.study import expand, load_profile, profile_from_dict
from xlm_core.study.runner import AGGREGATION_NOTEBOOKS, study_document, thread_limit

REPO = Path(__file__).resolve().parents[1]


def raw_profile(**changes) -> dict:
    raw = {
        "name": "t",
        "note": "test profile",
        "data": "real",
        "datasets": {d: {"root": f"/data/{d}"} for d in ("head", "hand", "chest")},
        "run": {"epochs": 4, "lr": 1.0e-3, "loss": "spatial_ce", "train_size": [32, 32]},
        "seeds": [0, 1],
        "backbones": None,
        "transfer": {"targets": ["head"], "chains": [["imagenet", "hand", "head"]],
                     "finetune": {"epochs": 2, "lr": 3.0e-4}},
        "ablation": {"dataset": "hand", "arch": "unet", "encoder": "vgg19",
                     "losses": ["spatial_ce", "mse"], "lrs": [1.0e-3, 1.0e-4], "seed": 0,
                     "run": {"epochs": 3}},
        "execution": {"workers": 2, "threads": 1},
    }
    raw.update(changes)
    return raw


def plan_of(raw: dict, tmp_path: Path):
    profile = profile_from_dict(raw)
    roots = {d: Path(f"/data/{d}") for d in ("head", "hand", "chest")}
    return profile, expand(profile, roots, {d: "fp-" + d for d in roots}, tmp_path / "t")


def test_ablation_expands_into_every_loss_and_lr_once(tmp_path):
    profile, plan = plan_of(raw_profile(), tmp_path)
    abl = [r for r in plan.runs if r.kind == "ablation"]
    assert sorted((r.config["loss"], r.config["lr"]) for r in abl) == [
        ("mse", 1e-4), ("mse", 1e-3), ("spatial_ce", 1e-4), ("spatial_ce", 1e-3)]
    assert all(r.dataset == "hand" and r.seed == 0 and r.config["epochs"] == 3 for r in abl)
    assert all(r.config["fold"] is None and r.config["init"] is None and not r.depends_on for r in abl)
    assert len({r.run_id for r in abl}) == 4
    doc = study_document(profile, plan, {"hand": Path("/data/hand"), "head": Path("/data/head")},
                         {"hand": "x", "head": "y"})
    assert doc["counts"]["ablation"] == 4
    assert {(r["loss"], r["lr"]) for r in doc["runs"] if r["kind"] == "ablation"} == {
        ("mse", 1e-4), ("mse", 1e-3), ("spatial_ce", 1e-4), ("spatial_ce", 1e-3)}
    assert "ablation" in AGGREGATION_NOTEBOOKS


def test_finetune_settings_apply_to_later_stages_only(tmp_path):
    _, plan = plan_of(raw_profile(), tmp_path)
    transfer = {(tuple(r.chain), r.seed): r for r in plan.runs if r.kind == "transfer"}
    first = transfer[(("imagenet",), 0)]
    second = transfer[(("imagenet", "hand"), 0)]
    assert (first.config["epochs"], first.config["lr"]) == (4, 1e-3)
    assert (second.config["epochs"], second.config["lr"]) == (2, 3e-4)
    # a change of the finetune settings changes the later stages' ids only
    raw = raw_profile()
    raw["transfer"]["finetune"] = {"epochs": 3}
    _, plan2 = plan_of(raw, tmp_path)
    t2 = {(tuple(r.chain), r.seed): r for r in plan2.runs if r.kind == "transfer"}
    assert t2[(("imagenet",), 0)].run_id == first.run_id
    assert t2[(("imagenet", "hand"), 0)].run_id != second.run_id


@pytest.mark.parametrize("change, words", [
    ({"ablation": {"losses": ["l1"]}}, ["ablation.losses[0]", "spatial_ce"]),
    ({"ablation": {"lrs": ["fast"]}}, ["ablation.lrs[0]"]),
    ({"ablation": {"run": {"lr": 1.0e-3}}}, ["ablation.run.lr"]),
    ({"ablation": {"dataset": "knee"}}, ["ablation.dataset", "hand"]),
    ({"ablation": {"typo": 1}}, ["ablation.typo", "losses"]),
    ({"execution": {"workers": 0}}, ["execution.workers"]),
    ({"execution": {"cores": 2}}, ["execution.cores", "threads"]),
    ({"transfer": {"finetune": {"epoch": 2}}}, ["transfer.finetune.epoch", "epochs"]),
])
def test_bad_sections_name_the_key(change, words):
    with pytest.raises(XLMError) as err:
        profile_from_dict(raw_profile(**change))
    for word in words:
        assert word in str(err.value)


def test_thread_limit_sets_and_restores_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with thread_limit(1):
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7" and "MKL_NUM_THREADS" not in os.environ
    with thread_limit(None):
        assert os.environ["OMP_NUM_THREADS"] == "7"


def test_shipped_profiles_validate_and_demo_has_an_ablation():
    demo = load_profile("demo").settings
    assert demo["ablation"] is not None and len(demo["ablation"]["losses"]) >= 2
    assert demo["execution"]["workers"] == "auto" and demo["execution"]["threads"] == 1
    assert len(demo["transfer"]["seeds"] or demo["seeds"]) >= 2
    paper = load_profile("paper").settings
    assert (paper["run"]["loss"], paper["run"]["lr"]) == ("mse", 1e-4)  # the paper's setting


# --------------------------------------------------------------------------- reading runs


def write_run(results: Path, run_id: str, loss: str, lr: float, mre: float | None, epochs: int = 3) -> dict:
    folder = results / "runs" / run_id
    folder.mkdir(parents=True)
    cfg = {"loss": loss, "lr": lr, "sigma": 1.5, "batch_size": 2}
    if mre is not None:
        (folder / "metrics.json").write_text(json.dumps({
            "config": cfg, "mre": mre, "mean_shape_mre": 2.0, "unit": "mm", "epochs_run": epochs,
            "best_epoch": epochs, "train_seconds": 1.0, "splits": {"fit": 9, "val": 2}}))
        rows = "\n".join(f"{e},{1.0 / e},{2.0 / e},{lr},0.1" for e in range(1, epochs + 1))
        (folder / "history.csv").write_text("epoch,train_loss,val_loss,lr,seconds\n" + rows + "\n")
    return {"run_id": run_id, "kind": "ablation", "dataset": "hand", "arch": "unet", "encoder": "vgg19",
            "seed": 0, "config": cfg}


def test_table_and_curves_from_runs(tmp_path):
    results = tmp_path / "s"
    runs = [write_run(results, "a", "mse", 1e-3, 1.5), write_run(results, "b", "spatial_ce", 1e-3, 0.5),
            write_run(results, "c", "spatial_ce", 1e-4, None),
            {"run_id": "x", "kind": "transfer", "dataset": "head"}]
    (results / "study.json").write_text(json.dumps({"study": "s", "runs": runs, "settings": {
        "run": {"loss": "spatial_ce", "lr": 1e-3, "sigma": 1.5}, "transfer": {"finetune": {"epochs": 2}}}}))
    study = load_study(results)
    table = ablation.ablation_table(study)
    assert list(table["run_id"]) == ["a", "b", "c"]  # loss, then lr descending
    b = table.set_index("run_id").loc["b"]
    assert b["ratio"] == pytest.approx(0.25) and bool(b["meets_floor"])
    a = table.set_index("run_id").loc["a"]
    assert a["ratio"] == pytest.approx(0.75) and not bool(a["meets_floor"])
    assert a["steps_per_epoch"] == 4 and a["steps"] == 12  # 9 fit images // batch 2, 3 epochs
    assert table.set_index("run_id").loc["c", "state"] == "missing"
    curves = ablation.ablation_curves(study)
    assert set(curves["run_id"]) == {"a", "b"} and list(curves[curves.run_id == "a"]["step"]) == [4, 8, 12]
    fig = ablation.plot_ablation(curves, table, caption="test")
    assert len(fig.axes) == 3  # one panel per loss + the ratio panel
    shown = ablation.display_table(table)
    assert "MRE / mean shape" in shown.columns
    assert ablation.chosen_defaults(study)["transfer.finetune"] == {"epochs": 2}


def test_traced_runs_draw_the_validation_ratio_on_one_scale(tmp_path):
    """Runs that traced their MRE (trace_mre) are drawn as validation MRE / mean shape, on a
    log scale shared by every loss, instead of their incomparable losses."""
    results = tmp_path / "s"
    run = write_run(results, "a", "mse", 1e-3, 1.5, epochs=2)
    (results / "runs" / "a" / "history.csv").write_text(
        "epoch,train_loss,val_loss,lr,seconds,val_mre,val_ratio,test_mre,test_ratio,trace_seconds\n"
        "1,1.0,2.0,0.001,0.1,3.0,1.5,3.2,1.6,0.01\n2,0.5,1.0,0.001,0.1,1.0,0.5,1.2,0.6,0.01\n")
    (results / "study.json").write_text(json.dumps({"study": "s", "runs": [run]}))
    study = load_study(results)
    curves = ablation.ablation_curves(study)
    assert list(curves["val_ratio"]) == [1.5, 0.5]
    fig = ablation.plot_ablation(curves, ablation.ablation_table(study))
    panel = fig.axes[0]
    assert panel.get_yscale() == "log" and "MRE / mean shape" in panel.get_title()
    assert list(panel.lines[0].get_ydata()) == [1.5, 0.5]


def write_traced(results: Path, run_id: str, kind: str, val_losses, test_ratios, seconds, notebook_s,
                 final_ratio) -> dict:
    folder = results / "runs" / run_id
    folder.mkdir(parents=True)
    head = "epoch,train_loss,val_loss,lr,seconds,val_mre,val_ratio,test_mre,test_ratio,trace_seconds\n"
    rows = "".join(f"{e},1.0,{v},0.001,{seconds},1.0,1.0,{t},{t},1.0\n"
                   for e, (v, t) in enumerate(zip(val_losses, test_ratios), start=1))
    (folder / "history.csv").write_text(head + rows)
    (folder / "status.json").write_text(json.dumps({"state": "done", "seconds": notebook_s}))
    (folder / "metrics.json").write_text(json.dumps({"mre": final_ratio, "mean_shape_mre": 1.0, "unit": "mm"}))
    return {"run_id": run_id, "kind": kind, "dataset": "hand", "arch": "unet", "encoder": "vgg19", "fold": None,
            "seed": 0, "chain": ["imagenet"], "config": {"epochs": len(val_losses), "loss": "mse", "lr": 1e-3}}


def test_budget_curve_replays_the_checkpoint_choice_of_a_shorter_run(tmp_path):
    """At a budget of k epochs a run keeps its best-validation epoch among the first k, whatever
    the test trace says; minutes are those epochs plus the run's measured overhead."""
    results = tmp_path / "s"
    a = write_traced(results, "a", "transfer", [3, 2, 2.5, 1], [2.0, 0.5, 0.4, 0.3], 10, 100, 0.3)  # overhead 56
    b = write_traced(results, "b", "ablation", [1, 2], [0.9, 0.1], 5, 30, 0.9)  # overhead 18
    (results / "study.json").write_text(json.dumps({"study": "s", "runs": [a, b]}))
    study = load_study(results)
    curve = ablation.budget_curve(study, fractions=(0.5, 0.75, 1.0), workers=2).set_index("fraction")
    assert list(curve["worst_ratio"]) == [0.5, 0.5, 0.3]  # 0.75: epoch 3's 0.4 is not the checkpoint
    assert list(curve["ablation_worst"]) == [0.9, 0.9, 0.9]  # epoch 2's val loss never improved
    assert curve.loc[0.5, "worker_minutes"] == pytest.approx((20 + 56 + 5 + 18) / 60)
    assert curve.loc[1.0, "wall_minutes"] == pytest.approx((40 + 56 + 10 + 18) / 60 / 2)
    assert list(curve["above_floor"]) == [1, 1, 0] and set(curve["table_runs"]) == {1}
    assert list(curve["worst_unet"]) == [0.5, 0.5, 0.3]  # per architecture, table runs only
    assert len(ablation.plot_budget_curve(curve.reset_index()).axes[0].lines) >= 2
    floor = ablation.floor_table(study).set_index("run_id")
    assert bool(floor.loc["a", "meets_floor"]) and not bool(floor.loc["b", "meets_floor"])
    summary = ablation.floor_summary(floor.reset_index()).set_index("kind")
    assert summary.loc["ablation", f"above {ablation.FLOOR}"] == 1 and summary.loc["transfer", "worst ratio"] == 0.3


def test_a_study_that_traces_only_its_plateau_ablation_draws_the_curve_from_those_runs(tmp_path):
    """The demo traces its ablation only (plateau schedule); its table runs are untraced and on a
    cosine schedule, whose prefix is no shorter run: the curve is made of the ablation's runs of
    the study's loss, and says so."""
    results = tmp_path / "s"
    ce = write_traced(results, "ce", "ablation", [3, 2, 1], [2.0, 0.5, 0.3], 10, 100, 0.3)
    ce["config"]["loss"] = "spatial_ce"
    mse = write_traced(results, "mse", "ablation", [3, 2, 1], [9.0, 8.0, 7.0], 10, 100, 7.0)
    cosine = write_traced(results, "cos", "transfer", [3, 2, 1], [0.2, 0.2, 0.2], 10, 100, 0.2)
    cosine["config"]["lr_schedule"] = "cosine"
    untraced = write_run(results, "plain", "spatial_ce", 1e-3, 1.5)
    (results / "study.json").write_text(json.dumps({
        "study": "s", "runs": [ce, mse, cosine, untraced], "settings": {"run": {"loss": "spatial_ce"}}}))
    study = load_study(results)
    curve = ablation.budget_curve(study, fractions=(1 / 3, 1.0), workers=1)
    assert list(curve["worst_ratio"]) == [2.0, 0.3] and list(curve["worst_unet"]) == [2.0, 0.3]
    assert list(curve["ablation_worst"]) == [9.0, 7.0]
    # each: 3 epochs x 10 s + its overhead (100 s notebook - 33 s trained and traced); not the cosine run
    assert curve["worker_minutes"].iloc[-1] == pytest.approx(2 * (30 + 67) / 60)
    assert "2 traced ablation run(s)" in curve.attrs["runs"] and "2 other run(s)" in curve.attrs["runs"]
    assert "spatial_ce" in curve.attrs["runs"]


def test_an_untraced_study_has_no_budget_curve(tmp_path):
    results = tmp_path / "s"
    run = write_run(results, "a", "mse", 1e-3, 1.5)
    (results / "runs" / "a" / "status.json").write_text(json.dumps({"state": "done", "seconds": 1}))
    (results / "study.json").write_text(json.dumps({"study": "s", "runs": [run]}))
    study = load_study(results)
    with pytest.raises(XLMError, match="trace_mre"):
        ablation.budget_curve(study)


def test_the_ablation_reads_the_loaded_study_and_names_its_file(tmp_path):
    """The grid (``ablation_runs``) and the settings come from the loaded study (load_study names
    study.json when it is absent); a grid naming a run the study lacks names study.json."""
    with pytest.raises(XLMError, match="study.json: not found"):
        load_study(tmp_path)
    results = tmp_path / "s"
    runs = [write_run(results, "a", "mse", 1e-3, 1.5), {"run_id": "t", "kind": "transfer", "dataset": "hand"}]
    (results / "study.json").write_text(json.dumps({"study": "s", "runs": runs, "ablation_runs": ["t", "a"]}))
    study = load_study(results)
    assert study.ablation_runs == ["t", "a"] and study.settings == {}
    assert [r["run_id"] for r in ablation.ablation_runs(study)] == ["t", "a"]  # the grid's order, any kind
    assert ablation.chosen_defaults(study)["loss"] is None
    broken = dataclasses.replace(study, ablation_runs=["a", "gone"])
    with pytest.raises(XLMError, match=r"s/study\.json: ablation_runs names run\(s\) not in runs: \['gone'\]"):
        ablation.ablation_table(broken)


def test_the_notebook_runs_on_fake_runs(tmp_path):
    """notebooks/ablation.py executes (papermill) against a fake study."""
    pytest.importorskip("papermill")
    from xlm_core.study.notebooks import execute_notebook

    results = tmp_path / "s"
    runs = [write_run(results, "a", "mse", 1e-3, 1.5), write_run(results, "b", "spatial_ce", 1e-3, 0.5)]
    (results / "study.json").write_text(json.dumps({
        "study": "s", "profile": "demo", "profile_note": "demo profile: synthetic", "data_source": "synthetic",
        "runs": runs, "settings": {"run": {"loss": "spatial_ce", "lr": 1e-3}}}))
    out = execute_notebook(REPO / "notebooks" / "ablation.py", tmp_path / "ablation.ipynb",
                           {"results_dir": str(results), "study": "s"}, cwd=REPO / "notebooks")
    text = out.read_text()
    assert "spatial_ce" in text and "SYNTHETIC" in text


def test_a_grid_point_equal_to_a_transfer_run_is_that_run(tmp_path):
    raw = raw_profile(ablation={"dataset": "hand", "losses": ["spatial_ce", "mse"], "lrs": [1.0e-3]},
                      transfer={"targets": ["head"], "chains": [["imagenet", "hand", "head"]]})
    _, plan = plan_of(raw, tmp_path)
    hand_baseline = [r for r in plan.runs if r.kind == "transfer" and r.dataset == "hand" and r.seed == 0]
    assert len(plan.ablation_ids) == 2
    assert plan.ablation_ids[0] == hand_baseline[0].run_id  # spatial_ce, lr 1e-3: trained once
    assert [r.kind for r in plan.runs].count("ablation") == 1
    assert len({r.run_id for r in plan.runs}) == len(plan.runs)


def test_learning_rates_per_loss(tmp_path):
    raw = raw_profile(ablation={"dataset": "hand", "losses": ["spatial_ce", "bce"],
                                "lrs": {"spatial_ce": [1.0e-3, 1.0e-4], "bce": [1.0e-3]}})
    _, plan = plan_of(raw, tmp_path)
    points = [(r.config["loss"], r.config["lr"]) for r in plan.by_id().values() if r.run_id in plan.ablation_ids]
    assert sorted(points) == [("bce", 1e-3), ("spatial_ce", 1e-4), ("spatial_ce", 1e-3)]
    with pytest.raises(XLMError, match="ablation.lrs.bce"):
        profile_from_dict(raw_profile(ablation={"losses": ["spatial_ce", "bce"], "lrs": {"spatial_ce": [1.0e-3]}}))


def test_budget_minutes_come_from_the_notebook_run_that_trained_and_decoders_are_reported(tmp_path):
    """A run scored again after the decoder changed executes its notebook again (a short
    one): its overhead stays that of the run that trained it (``first_done_seconds``), and
    the trace's decoder is reported beside the final one."""
    results = tmp_path / "s"
    a = write_traced(results, "a", "transfer", [3, 2], [0.5, 0.3], 10, 100, 0.3)
    b = write_traced(results, "b", "transfer", [3, 2], [0.5, 0.3], 10, 100, 0.3)
    (results / "runs" / "a" / "status.json").write_text(
        json.dumps({"state": "done", "seconds": 7, "first_done_seconds": 100}))
    for run_id, extra in (("a", {"decoder": "softargmax-r5", "trace_decoder": "newton"}), ("b", {})):
        path = results / "runs" / run_id / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **extra}))
    (results / "study.json").write_text(json.dumps({"study": "s", "runs": [a, b]}))
    study = load_study(results)
    curve = ablation.budget_curve(study, fractions=(1.0,), workers=1)
    # each: 2 epochs x 10 s + overhead (100 s notebook - 22 s trained and traced); not 7 s for run a
    assert curve["worker_minutes"].iloc[0] == pytest.approx(2 * (20 + 78) / 60)
    decoders = ablation.trace_decoders(study)
    assert decoders.to_dict("records") == [{"trace_decoder": "newton", "decoder": "newton", "runs": 1},
                                           {"trace_decoder": "newton", "decoder": "softargmax-r5", "runs": 1}]
