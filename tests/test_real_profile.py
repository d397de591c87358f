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


def test_the_plan_has_the_four_chains_for_two_seeds_and_each_stage_starts_where_it_should(tmp_path):
    profile, plan = _plan(tmp_path)
    s = profile.settings
    assert s["data"] == "real" and s["notebooks"] == ["real"]
    assert s["transfer"]["chains"] == [["imagenet", "ceph"], ["imagenet", "spine", "ceph"],
                                       ["scratch", "ceph"], ["imagenet", "ceph", "ceph"]]
    assert len(s["seeds"]) >= 2
    runs = {(tuple(r.chain), r.dataset, r.seed): r for r in plan.runs}
    assert len(plan.runs) == 5 * len(s["seeds"])  # ceph, spine, spine>ceph, scratch ceph, ceph>ceph
    for seed in s["seeds"]:
        alone = runs[(("imagenet",), "ceph", seed)]
        spine = runs[(("imagenet",), "spine", seed)]
        chain = runs[(("imagenet", "spine"), "ceph", seed)]
        control = runs[(("imagenet", "ceph"), "ceph", seed)]
        scratch = runs[(("scratch",), "ceph", seed)]
        assert alone.depends_on == spine.depends_on == scratch.depends_on == []
        assert (alone.config["encoder_weights"], spine.config["encoder_weights"],
                scratch.config["encoder_weights"]) == ("imagenet", "imagenet", "none")
        assert chain.depends_on == [spine.run_id] and control.depends_on == [alone.run_id]
        assert chain.config["init"].endswith(f"{spine.run_id}/checkpoint.pt")
        # each dataset at its own aspect; the control's second stage trains as long as the chain's
        ceph_hw, spine_hw = tuple(alone.config["train_size"]), tuple(spine.config["train_size"])
        assert ceph_hw == tuple(s["datasets"]["ceph"]["train_size"]) == tuple(chain.config["train_size"])
        assert spine_hw == tuple(s["datasets"]["spine"]["train_size"])
        assert 1.1 < ceph_hw[0] / ceph_hw[1] < 1.4 and spine_hw[0] / spine_hw[1] > 2  # 1671x1340; median 2.7
        assert control.config["epochs"] == chain.config["epochs"]
        # scratch trains exactly as its ImageNet twin but for the start
        assert {k for k in alone.config if alone.config[k] != scratch.config[k]} <= {"encoder_weights", "out"}


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
