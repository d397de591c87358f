"""The real-x-ray profile (`studies/real.yaml`): its plan without training, its data roots, its
book page."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlm_core import XLMError
from xlm_core.report.book import REAL_HOW, _real_chapter
from xlm_core.study.plan import data_folder, expand, prepare_data
from xlm_core.study.profile import load_profile, profile_from_dict


def _plan(tmp_path: Path):
    profile = load_profile("real")
    roots = {"ceph": tmp_path / "c", "spine": tmp_path / "s"}
    return profile, expand(profile, roots, {"ceph": "fc", "spine": "fs"}, tmp_path / "results" / "real")


def test_the_plan_cross_validates_both_targets_with_their_controls_and_shares_each_source(tmp_path):
    profile, plan = _plan(tmp_path)
    s = profile.settings
    tr = s["transfer"]
    assert s["data"] == "real" and s["notebooks"] == ["real"]
    assert tr["targets"] == ["ceph", "spine"] and tr["folds"] >= 3 and tr["compute_control"]
    assert not tr["matched_control"]  # a restarted second stage measured the restart
    assert tr["chains"] == [["imagenet", "ceph"], ["imagenet", "spine", "ceph"], ["scratch", "ceph"],
                            ["imagenet", "spine"], ["imagenet", "ceph", "spine"]]
    seeds, folds = s["seeds"], tr["folds"]
    assert len(seeds) >= 2
    # per seed: two sources, and per target and fold: alone, the chain's last stage, the compute
    # control; scratch on ceph only (what ImageNet buys is asked there: the 90-minute budget)
    assert len(plan.runs) == len(seeds) * (2 + 2 * folds * 3 + folds)
    steps = {d: s["datasets"][d]["steps"] for d in ("ceph", "spine")}
    for seed in seeds:
        mine = [r for r in plan.runs if r.seed == seed]
        sources = {r.dataset: r for r in mine if r.fold is None}
        assert set(sources) == {"ceph", "spine"}
        for target, source in (("ceph", "spine"), ("spine", "ceph")):
            src = sources[source]
            assert src.chain == ["imagenet"] and src.config["encoder_weights"] == "imagenet"
            assert src.config["steps"] == steps[source] and src.config["folds"] is None
            for fold in range(folds):
                here = {(tuple(r.chain), r.matches): r for r in mine if r.dataset == target and r.fold == fold}
                alone = here[(("imagenet",), None)]
                scratch = here.get((("scratch",), None))
                assert (scratch is None) == (target == "spine")
                chain = here[(("imagenet", source), None)]
                control = here[(("imagenet",), f"imagenet>{source}>{target}")]
                assert chain.depends_on == [src.run_id] and chain.config["init"].endswith(f"{src.run_id}/checkpoint.pt")
                assert alone.depends_on == control.depends_on == []
                assert (alone.config["encoder_weights"], control.config["encoder_weights"]) == ("imagenet", "imagenet")
                # equal target steps, and equal compute in one schedule
                assert alone.config["steps"] == chain.config["steps"] == steps[target]
                assert control.config["steps"] == steps[source] + steps[target]
                assert all(r.config["folds_over"] == "all" and r.config["fold"] == fold for r in here.values())
                if scratch is not None:  # trains exactly as its ImageNet twin but for the start
                    assert scratch.depends_on == [] and scratch.config["encoder_weights"] == "none"
                    assert {k for k in alone.config if alone.config[k] != scratch.config[k]} <= {"encoder_weights", "out"}
        ceph_hw = tuple(sources["ceph"].config["train_size"])
        spine_hw = tuple(sources["spine"].config["train_size"])
        assert 1.1 < ceph_hw[0] / ceph_hw[1] < 1.4 and spine_hw[0] / spine_hw[1] > 2  # 1671x1340; median 2.7


def test_data_root_holds_the_public_repositories_folders(real_sets_root, tmp_path):
    profile = load_profile("real")
    assert data_folder("ceph") == "hamedan_university_dataset" and data_folder("spine") == "boostnet_labeldata"
    assert data_folder("head") == "head"
    roots = prepare_data(profile, tmp_path, data_root=real_sets_root)
    assert roots == {"ceph": (real_sets_root / "hamedan_university_dataset").resolve(),
                     "spine": (real_sets_root / "boostnet_labeldata").resolve()}
    with pytest.raises(XLMError, match="hamedan_university_dataset"):
        prepare_data(profile, tmp_path, data_root=tmp_path / "empty")


def test_without_a_root_the_error_names_the_folders(tmp_path):
    with pytest.raises(XLMError, match=r"--data-root DIR \(a folder holding hamedan_university_dataset/, boostnet_labeldata/\)"):
        prepare_data(load_profile("real"), tmp_path)


def test_real_sets_have_no_phantoms():
    raw = {"name": "x", "data": "synthetic", "run": {"epochs": 1},
           "transfer": {"targets": ["ceph"], "chains": [["imagenet", "ceph"]]}}
    with pytest.raises(XLMError, match=r"data: synthetic.*\['ceph'\]"):
        profile_from_dict(raw)
    with pytest.raises(XLMError, match="notebooks"):
        profile_from_dict({**raw, "data": "real", "notebooks": ["../x"]})


def test_the_book_says_how_to_make_the_chapter_when_its_results_are_absent(tmp_path):
    demo = tmp_path / "results" / "demo"
    demo.mkdir(parents=True)
    out = tmp_path / "generated"
    out.mkdir()
    page = _real_chapter(demo, out, {})
    assert page.name == "real.md" and "xlm study run real --data-root DIR" in page.read_text()
    assert "xlm study run real" in REAL_HOW
