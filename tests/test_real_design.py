"""The real study's design (issue 32): the anatomy rule that refuses broken rows, folds over every
usable target image with a patient's images in one fold, training length in optimiser steps,
and the plan's cross-validated targets and compute controls (the target alone for as many steps
as a whole chain, in one schedule)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import stand_in_roots

from xlm_core import XLMError
from xlm_core.config import RunConfig
from xlm_core.datasets import grouped_kfold_split, load_dataset
from xlm_core.datasets.check import order_problem
from xlm_core.datasets.descriptor import parse_descriptor
from xlm_core.samples import run_samples
from xlm_core.study import expand, profile_from_dict

# --------------------------------------------------------------------------- the anatomy rule


def _vertebrae(centres_y: list[float]) -> np.ndarray:
    """Four corners around each centre (x 10/20, y centre -/+ 2), in order."""
    return np.array([[x, c + dy] for c in centres_y for dy in (-2, 2) for x in (10, 20)], dtype=float)


def test_order_rule_names_each_pair_of_structures_out_of_order():
    assert order_problem(_vertebrae([10, 20, 30]), 4, 1) is None
    swapped = order_problem(_vertebrae([10, 30, 20]), 4, 1)
    assert swapped is not None and "group 3 (landmarks 9-12, centre y=20.0) is not below group 2" in swapped
    assert "group 2 (landmarks 5-8" not in swapped.split("is not below")[0]  # only the broken pair
    tied = order_problem(_vertebrae([10, 10, 30]), 4, 1)  # strictly: a tie is out of order too
    assert tied is not None and "group 2" in tied
    # the same points along x: increasing x is "right of"
    assert order_problem(_vertebrae([10, 20, 30])[:, ::-1].copy(), 4, 0) is None


def _descriptor(**extra) -> dict:
    return {"images": "img/*.png", "annotations": {"format": "landmark_csv", "sources": ["gt.csv"]},
            "landmarks": 8, **extra}


@pytest.mark.parametrize("extra, words", [
    ({"order": {"group": 3, "axis": "y"}}, ["order.group", "8 landmarks"]),
    ({"order": {"group": 4, "axis": "z"}}, ["order.axis", "'z'"]),
    ({"order": {"group": 4, "axis": "y", "by": 1}}, ["order.by"]),
    ({"group_by": "series-\\d+"}, ["group_by", "no group"]),
    ({"group_by": "(unclosed"}, ["group_by", "not a regular expression"]),
])
def test_descriptor_refuses_a_bad_order_or_group_rule(extra, words):
    with pytest.raises(XLMError) as err:
        parse_descriptor(_descriptor(**extra), "my/dataset.yaml", None)
    for word in ["my/dataset.yaml", *words]:
        assert word in str(err.value)
    ok = parse_descriptor(_descriptor(order={"group": 4, "axis": "y"}, group_by="s(\\d+)"), "d.yaml", None)
    assert ok.order == (4, 1) and ok.group_by == "s(\\d+)"


# --------------------------------------------------------------------------- folds over every image


def test_grouped_folds_cover_every_id_once_and_never_split_a_group():
    ids = [f"s{g}-{k}" for g in range(12) for k in range(1 + g % 3)] + ["lone1", "lone2"]
    groups = {i: i.split("-")[0] for i in ids}
    held = [grouped_kfold_split(ids, groups, 3, f)[1] for f in range(3)]
    assert sorted(sum(held, [])) == sorted(ids)  # every id held out exactly once
    for fold, heldout in enumerate(held):
        train, again = grouped_kfold_split(ids, groups, 3, fold)
        assert again == heldout and not set(train) & set(heldout) and len(train) + len(heldout) == len(ids)
        assert not {groups[i] for i in train} & {groups[i] for i in heldout}  # a patient on one side
    sizes = [len(h) for h in held]
    assert max(sizes) - min(sizes) <= 3  # at most one group's size apart
    assert held != [grouped_kfold_split(ids, groups, 3, f, seed=1)[1] for f in range(3)]
    with pytest.raises(XLMError, match="at least 3 groups"):
        grouped_kfold_split(["a1", "a2", "b1"], {"a1": "a", "a2": "a", "b1": "b"}, 3, 0)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    from xlm_core.datasets.synth import write_phantoms

    root = tmp_path_factory.mktemp("hand")
    write_phantoms("hand", root, n=10, seed=0)
    return root


def test_folds_over_all_score_every_usable_image_once(phantoms):
    lset = load_dataset("hand", str(phantoms))
    assert lset.test_ids  # the dataset's own split has a test part: folds over "all" ignore it
    base = {"dataset": "hand", "root": str(phantoms), "out": "unused", "folds": 3, "val_fraction": 0.25}
    tested = []
    for fold in range(3):
        samples = run_samples(RunConfig.from_dict({**base, "fold": fold, "folds_over": "all"}), lset)
        fold_ids = [s.id for s in samples.test]
        trained = [s.id for s in samples.fit + samples.val]
        assert samples.heldout is None and not set(fold_ids) & set(trained)
        assert sorted(fold_ids + trained) == sorted(s.id for s in lset.samples)
        tested += fold_ids
    assert sorted(tested) == sorted(s.id for s in lset.samples)
    # folds over the training split (the backbones' CV) keep the dataset's test split
    train_cv = run_samples(RunConfig.from_dict({**base, "fold": 0}), lset)
    assert [s.id for s in train_cv.test] == list(lset.test_ids) and train_cv.heldout


def test_new_fields_keep_the_ids_of_runs_that_do_not_set_them():
    cfg = {"dataset": "hand", "root": "r", "out": "o"}
    plain = RunConfig.from_dict(cfg).run_hash("f")
    assert RunConfig.from_dict({**cfg, "folds_over": "train", "steps": None}).run_hash("f") == plain
    assert RunConfig.from_dict({**cfg, "steps": 5}).run_hash("f") != plain
    with pytest.raises(XLMError, match="folds_over"):
        RunConfig.from_dict({**cfg, "folds_over": "test"})


# --------------------------------------------------------------------------- steps


def test_steps_train_exactly_that_many_optimiser_steps(phantoms, tmp_path, monkeypatch):
    import torch

    from xlm_core import training

    counted = []
    made = training.make_optimiser

    def counting(model, lr):
        optimiser = made(model, lr)
        optimiser.register_step_post_hook(lambda *_: counted.append(1))
        return optimiser

    monkeypatch.setattr(training, "make_optimiser", counting)
    torch.set_num_threads(1)
    cfg = RunConfig.from_dict({
        "dataset": "hand", "root": str(phantoms), "out": str(tmp_path / "run"), "arch": "unet",
        "encoder": "resnet18", "train_size": [32, 32], "test_size": [32, 32], "batch_size": 2,
        "val_fraction": 0.25, "steps": 7, "epochs": 1, "patience": 100, "lr_schedule": "cosine",
        "loss": "spatial_ce", "lr": 1.0e-3, "device": "cpu"})
    metrics = training.train_and_evaluate(cfg)
    per_epoch = metrics["splits"]["fit"] // 2
    assert len(counted) == 7 == metrics["steps_run"]  # not epochs x steps an epoch
    assert metrics["epochs_run"] == math.ceil(7 / per_epoch) and 7 % per_epoch  # the last epoch cut short
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["lr"].iloc[-1] == 0.0  # the cosine schedule spans exactly the 7 steps
    assert metrics["split"]["test_ids"] == list(load_dataset("hand", str(phantoms)).test_ids)


# --------------------------------------------------------------------------- the plan


@pytest.fixture
def real_roots(tmp_path) -> dict[str, Path]:
    return stand_in_roots(tmp_path, ("ceph", "spine"))


def _profile(roots: dict[str, Path], **transfer) -> dict:
    return {
        "name": "r", "data": "real", "seeds": [0, 1],
        "datasets": {"ceph": {"root": str(roots["ceph"]), "steps": 40},
                     "spine": {"root": str(roots["spine"]), "steps": 100}},
        "run": {"epochs": 1, "train_size": [32, 32], "lr_schedule": "cosine", "encoder_weights": "imagenet"},
        "transfer": {"arch": "unetplusplus", "encoder": "resnet18", "targets": ["ceph", "spine"],
                     "chains": [["imagenet", "ceph"], ["imagenet", "spine", "ceph"], ["scratch", "ceph"],
                                ["imagenet", "spine"], ["imagenet", "ceph", "spine"]],
                     "matched_control": False, "compute_control": True, "folds": 3, **transfer},
    }


def test_cross_validated_targets_share_each_source_and_get_compute_controls(real_roots, tmp_path):
    raw = _profile(real_roots)
    plan = expand(profile_from_dict(raw), real_roots, {"ceph": "fc", "spine": "fs"}, tmp_path / "r")
    by_id = plan.by_id()
    runs = [r.as_dict() for r in plan.runs]
    for seed in (0, 1):
        mine = [r for r in runs if r["seed"] == seed]
        # the sources: one run per seed on their own split, shared by every fold
        sources = [r for r in mine if r["fold"] is None]
        assert sorted(r["dataset"] for r in sources) == ["ceph", "spine"]
        assert all(r["config"]["folds"] is None and r["chain"] == ["imagenet"] for r in sources)
        # per target and fold: the single stages, the chain's last stage and its compute control
        for target, source in (("ceph", "spine"), ("spine", "ceph")):
            for fold in range(3):
                here = [r for r in mine if r["dataset"] == target and r["fold"] == fold]
                assert all(r["config"]["folds_over"] == "all" and r["config"]["folds"] == 3 for r in here)
                names = sorted((">".join(r["stages"]), r["matches"] or "") for r in here)
                expected = [(f"imagenet>{source}>{target}", ""), (f"imagenet>{target}", ""),
                            (f"imagenet>{target}", f"imagenet>{source}>{target}")]
                if target == "ceph":
                    expected.append(("scratch>ceph", ""))
                assert names == sorted(expected)
                chain = next(r for r in here if r["stages"] == ["imagenet", source, target])
                (parent,) = chain["depends_on"]
                assert by_id[parent].fold is None and by_id[parent].dataset == source
                control = next(r for r in here if r["matches"])
                assert control["config"]["steps"] == 140 and control["depends_on"] == []
                assert control["config"]["encoder_weights"] == "imagenet"
                assert "(steps of imagenet>" in plan.by_id()[control["run_id"]].label
    # 2 seeds x (2 sources + ceph 3 folds x 4 + spine 3 folds x 3)
    assert len(plan.runs) == 2 * (2 + 12 + 9)
    assert len({r.run_id for r in plan.runs}) == len(plan.runs)


def test_a_compute_control_needs_the_steps_of_every_stage(real_roots, tmp_path):
    raw = _profile(real_roots)
    del raw["datasets"]["spine"]["steps"]
    with pytest.raises(XLMError, match=r"stage on 'spine' sets no steps: set datasets.spine.steps"):
        expand(profile_from_dict(raw), real_roots, {"ceph": "fc", "spine": "fs"}, tmp_path / "r")


# --------------------------------------------------------------------------- the tables


def test_folds_pool_into_one_score_per_seed_weighted_by_images():
    from xlm_core.report.tables import pooled_over_folds

    runs = pd.DataFrame({
        "seed": [0, 0, 0, 1, 1], "fold": [0, 1, 2, 0, 1], "folds": [3] * 5,
        "test_mre": [1.0, 2.0, 4.0, 1.0, 1.0], "test_n_images": [10, 10, 20, 10, 10],
        "test_sdr_t1": [100.0, 50.0, 25.0, 0.0, 0.0], "chain": ["imagenet"] * 5,
    })
    pooled = pooled_over_folds(runs)
    assert list(pooled["seed"]) == [0]  # seed 1 lacks fold 2: a score of some images only is left out
    row = pooled.iloc[0]
    assert row["test_mre"] == pytest.approx((10 + 20 + 80) / 40) and row["test_n_images"] == 40
    assert row["test_sdr_t1"] == pytest.approx((1000 + 500 + 500) / 40)
    plain = runs.assign(fold=None)
    assert pooled_over_folds(plain) is plain


def test_compute_control_labels_stay_apart_from_matched_controls():
    from xlm_core.report.results import compute_control_for, control_for, is_control, run_chain

    run = {"stages": ["imagenet", "ceph"], "matches": "imagenet>spine>ceph"}
    label = run_chain(run)
    assert label == "imagenet (steps of imagenet>spine)"
    assert run_chain(run, "scratch") == "scratch (steps of scratch>spine)"
    assert not is_control(label, "ceph") and control_for(label, "ceph") is None
    assert compute_control_for("imagenet>spine", ["imagenet", label]) == label
    assert compute_control_for("imagenet>hand", ["imagenet", label]) is None
    assert json.loads(json.dumps(run))  # study.json carries it as plain JSON
    assert yaml.safe_load(yaml.safe_dump(run)) == run


def test_a_real_sets_rules_enter_its_fingerprint(real_roots, tmp_path, monkeypatch):
    from dataclasses import replace

    from xlm_core import datasets
    from xlm_core.study import plan

    before = plan.fingerprints(real_roots, tmp_path / "r")
    raw = {name: plan.dataset_fingerprint(root) for name, root in real_roots.items()}
    assert before["spine"] != raw["spine"] and before["ceph"] != raw["ceph"]
    original = datasets.builtin_descriptor
    monkeypatch.setattr(datasets, "builtin_descriptor",
                        lambda name: replace(original(name), digest="another rule") if name == "spine" else original(name))
    after = plan.fingerprints(real_roots, tmp_path / "r")
    assert after["spine"] != before["spine"] and after["ceph"] == before["ceph"]  # a changed rule reruns its runs


def _fold_study(tmp_path: Path, folds: dict[str, list[str]], targets=("ceph",)) -> Path:
    """A results folder whose ceph fold runs scored ``folds`` ({run id: test ids}, run ids
    ``f<fold>-<anything>``), plus one source run without a fold."""
    runs = [{"run_id": rid, "kind": "transfer", "dataset": "ceph", "fold": int(rid[1]), "seed": 0}
            for rid in folds] + [{"run_id": "source", "kind": "transfer", "dataset": "ceph", "fold": None, "seed": 0}]
    tmp_path.mkdir(parents=True)
    (tmp_path / "study.json").write_text(json.dumps({"study": "real", "runs": runs,
                                                     "settings": {"transfer": {"targets": list(targets)}}}))
    for rid, ids in {**folds, "source": ["071"]}.items():
        (tmp_path / "runs" / rid).mkdir(parents=True)
        (tmp_path / "runs" / rid / "metrics.json").write_text(json.dumps({"split": {"test_ids": ids}, "test": None,
                                                                         "unit": "px"}))
    return tmp_path


def test_tested_images_are_read_from_the_runs_and_checked(tmp_path):
    from xlm_core.report import load_study, real

    ok = load_study(_fold_study(tmp_path / "a", {"f0-x": ["001", "002"], "f0-y": ["001", "002"], "f1-x": ["003"]}))
    assert real.targets_of(ok) == ["ceph"]
    assert real.tested_images(ok, "ceph") == {"001": 0, "002": 0, "003": 1}  # the source's 071 is not a target image
    assert list(real.fold_table(ok)["test images"]) == [2, 1]
    twice = load_study(_fold_study(tmp_path / "b", {"f0-x": ["001"], "f1-x": ["001"]}))
    with pytest.raises(ValueError, match="image 001 is in folds 0 and 1"):
        real.tested_images(twice, "ceph")
    differ = load_study(_fold_study(tmp_path / "c", {"f0-x": ["001"], "f0-y": ["002"]}))
    with pytest.raises(ValueError, match="fold 0 of ceph scored other images"):
        real.tested_images(differ, "ceph")


def test_full_chain_names_every_stage_and_the_target():
    from xlm_core.report.real import full_chain
    from xlm_core.report.results import MEAN_SHAPE

    assert full_chain("imagenet>spine", "ceph") == "imagenet>spine>ceph"
    assert full_chain("imagenet (steps of imagenet>spine)", "ceph") == "imagenet>ceph (steps of imagenet>spine>ceph)"
    assert full_chain(MEAN_SHAPE, "ceph") == MEAN_SHAPE


def test_the_answer_paragraph_gives_each_target_its_contrasts_source_quality_and_what_was_not_asked():
    from xlm_core.report.real import answer_paragraphs

    table2 = pd.DataFrame([
        {"target": t, "chain": c, "mre": m, "unit": "px", "n_images": n, "n_seeds": s}
        for t, c, m, n, s in [
            ("ceph", "imagenet", 8.5, 94, 2), ("ceph", "imagenet>spine", 8.4, 94, 2),
            ("ceph", "imagenet (steps of imagenet>spine)", 8.7, 94, 2), ("ceph", "scratch", 10.9, 94, 2),
            ("ceph", "mean-shape baseline", 62.1, 94, 2),
            ("spine", "imagenet", 60.0, 457, 1), ("spine", "imagenet>ceph", 57.0, 457, 1),
            ("spine", "imagenet (steps of imagenet>ceph)", 55.0, 457, 1)]])
    q = [("ceph", "what the other x-rays buy at equal compute", "", "imagenet>spine",
          "imagenet (steps of imagenet>spine)", -0.31, -0.52, -0.11, 0.004),
         ("ceph", "what the other x-rays buy at equal target steps", "", "imagenet>spine", "imagenet",
          -0.12, -0.3, 0.05, 0.2),
         ("ceph", "what ImageNet buys", "one stage", "imagenet", "scratch", -2.4, -2.8, -2.0, 1e-9),
         ("spine", "what the other x-rays buy at equal compute", "", "imagenet>ceph",
          "imagenet (steps of imagenet>ceph)", 2.0, 1.0, 3.0, 1e-5)]
    questions = pd.DataFrame(q, columns=["target", "question", "comparison", "chain", "reference",
                                         "delta_mre", "ci_low", "ci_high", "p_holm"])
    sources = pd.DataFrame([{"dataset": "spine", "ratio": 0.81, "learned": False},
                            {"dataset": "ceph", "ratio": 0.12, "learned": True}])
    ceph, spine = answer_paragraphs(table2, questions, sources, human={"ceph": 5.71}).strip().split("\n\n")
    assert ceph.startswith("**ceph** (94 images, each tested once over the folds; 2 seeds).")
    assert ("`imagenet>spine>ceph` (8.40 px) against `imagenet>ceph (steps of imagenet>spine>ceph)`"
            in ceph and "-0.31 px [95 % CI -0.52, -0.11], Holm p 0.004" in ceph)
    assert "scored 0.81 x its mean shape" in ceph and "short of the 0.35 x" in ceph
    assert "Against `imagenet>ceph` (as many steps on ceph): -0.12 px" in ceph
    assert "(`imagenet>ceph` vs `scratch>ceph`): -2.40 px" in ceph and "Holm p < 0.001" in ceph
    assert "Human limit: one reader against the mean of both, 5.71 px" in ceph and "Mean shape: 62.10 px" in ceph
    assert spine.startswith("**spine** (457 images, each tested once over the folds; 1 seed).")
    assert "(learned its task)" in spine and "+2.00 px [95 % CI +1.00, +3.00]" in spine
    assert "ImageNet against random weights: not asked on spine (no `scratch>spine` ran)." in spine
    assert "Human limit" not in spine and "Mean shape" not in spine
