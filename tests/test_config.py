"""RunConfig, the one run contract: every field checked and converted at construction, one JSON
round trip, and the profile checker, ``xlm train``'s flags and the run notebook derived from it."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

import pytest

from xlm_core import XLMError
from xlm_core.cli import build_parser
from xlm_core.cli.train import config_from_args
from xlm_core.config import Flag, Plan, RunConfig, SettingError, field_names, marker, profile_settings, run_schema
from xlm_core.study.profile import RUN_SETTING_KEYS, profile_from_dict

REPO = Path(__file__).resolve().parents[1]

# set per run by the study plan (sections, seeds, folds, chains, datasets.<d>.options), never
# a profile's run setting: a new field must be added here or to the profile's run settings
PLAN_SET = {"dataset", "root", "out", "arch", "encoder", "init", "folds", "fold", "folds_over", "seed", "extra"}
# no flag of its own: dataset options come as repeatable --option KEY=VALUE
CLI_LESS = {"extra"}

# a value of every field that differs from its default
OTHER = {
    "dataset": "head", "root": "/data/head", "out": "/runs/a", "arch": "unet", "encoder": "resnet18",
    "encoder_weights": "imagenet", "init": "runs/x/checkpoint.pt", "epochs": 3, "patience": 0,
    "train_size": [64, 48], "test_size": [32, 32], "batch_size": 4, "lr": 1.0e-3, "lr_schedule": "cosine",
    "loss": "spatial_ce", "sigma": 1.5, "folds": 3, "fold": 2, "seed": 7, "device": "cpu", "precision": "fp32",
    "val_fraction": 0.0, "train_limit": 5, "num_workers": 1, "checkpoint_every_s": 30.0, "trace_mre": True,
    "precise_bn": True, "extra": {"annotator": "senior"}, "folds_over": "all", "steps": 9,
}
# a value every field refuses
BAD = {
    "dataset": "", "root": 3, "out": None, "arch": "segnet", "encoder": "", "encoder_weights": "",
    "init": "", "epochs": 0, "patience": -1, "train_size": [64], "test_size": [0, 64], "batch_size": 1.5,
    "lr": "1e-4", "lr_schedule": "step", "loss": "l1", "sigma": 0, "folds": 1, "fold": -1, "seed": -1,
    "device": "gpu", "precision": "fp16", "val_fraction": 1.0, "train_limit": 0, "num_workers": True,
    "checkpoint_every_s": -1.0, "trace_mre": "yes", "precise_bn": 1, "extra": ["a"], "folds_over": "test",
    "steps": 0,
}


def _train_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_the_tables_of_this_test_cover_every_field():
    assert set(OTHER) == set(BAD) == set(field_names())


def test_every_field_is_a_profile_run_setting_or_set_by_the_plan():
    assert set(RUN_SETTING_KEYS) == set(profile_settings()) == set(field_names()) - PLAN_SET
    for name in PLAN_SET:
        assert marker(name, Plan).where, name  # says where the plan sets it
    raw = {"name": "t", "data": "synthetic", "transfer": {"targets": ["head"], "chains": [["imagenet", "head"]]},
           "run": {k: OTHER[k] for k in RUN_SETTING_KEYS}}
    run = profile_from_dict(raw).settings["run"]
    assert run == {k: OTHER[k] for k in RUN_SETTING_KEYS}  # accepted, JSON form kept


def test_every_field_has_a_flag_of_xlm_train_or_is_listed_without_one():
    dests = {a.dest: a for a in _train_parser()._actions}
    assert {name for name in field_names() if (flag := marker(name, Flag)) and flag.name is None} == CLI_LESS
    described = run_schema()["properties"]
    for name in set(field_names()) - CLI_LESS:  # its help: the field's one description
        assert name in dests and dests[name].help.startswith(described[name]["description"]), name
    argv = []
    for name in set(field_names()) - CLI_LESS:
        flag = next(s for s in dests[name].option_strings if s.startswith("--"))
        value = OTHER[name]
        if isinstance(value, bool):
            argv += [flag]
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    argv += ["--option", "annotator=senior"]
    cfg = config_from_args(_train_parser().parse_args(argv))
    assert cfg.to_dict() == OTHER


def test_round_trip_through_json():
    cfg = RunConfig.from_dict(OTHER)
    assert cfg.train_size == (64, 48) and cfg.test_size == (32, 32) and isinstance(cfg.lr, float)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data == OTHER and RunConfig.from_dict(data) == cfg
    default = RunConfig(dataset="hand", root="r", out="o")
    assert RunConfig.from_dict(json.loads(json.dumps(default.to_dict()))) == default
    assert RunConfig(dataset="hand", root="r", out="o", sigma=2, lr=1).sigma == 2.0  # numbers as floats


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_is_refused_naming_the_field_and_the_value(name):
    values = {"dataset": "hand", "root": "r", "out": "o", name: BAD[name]}
    if name == "fold":
        values["folds"] = 2
    with pytest.raises(SettingError) as info:
        RunConfig.from_dict(values)
    message = str(info.value)
    assert info.value.name.split("[")[0] == name and f"run settings: {name}" in message, message
    shown = {"out": "null", "test_size": "int 0"}.get(name, repr(BAD[name]))  # test_size: its item refused
    assert shown in message, message


def test_allowed_values_are_named():
    with pytest.raises(XLMError, match="loss: input should be 'mse', 'bce', 'spatial_ce' or 'awing', got str 'l1'"):
        RunConfig(dataset="hand", root="r", out="o", loss="l1")
    with pytest.raises(XLMError, match="arch: unknown architecture 'segnet'; allowed: unet, unetplusplus"):
        RunConfig(dataset="hand", root="r", out="o", arch="segnet")
    with pytest.raises(XLMError, match="val_fraction: input should be less than 1, got int 1"):
        RunConfig(dataset="hand", root="r", out="o", val_fraction=1)
    with pytest.raises(XLMError, match="needs both folds and fold"):
        RunConfig(dataset="hand", root="r", out="o", folds=2)
    with pytest.raises(XLMError, match="learning_rate: unknown key; allowed: dataset, root, out, arch"):
        RunConfig.from_dict({"dataset": "hand", "root": "r", "out": "o", "learning_rate": 0.1})
    with pytest.raises(XLMError, match="run settings: out: missing"):
        RunConfig.from_dict({"dataset": "hand", "root": "r"})
    args = _train_parser().parse_args(["--dataset", "head", "--root", "/d", "--out", "o", "--epochs", "0"])
    with pytest.raises(XLMError, match="epochs: input should be greater than or equal to 1, got int 0"):
        config_from_args(args)


def test_run_ids_are_those_of_before_the_contract():
    """Hashes computed with the RunConfig before it checked its fields: ids of earlier studies stay."""
    assert RunConfig("hand", "dataset:hand", "o").run_hash("fp") == "64f7792a6744dd02"
    cfg = RunConfig("head", "dataset:head", "o", arch="unet", encoder="resnet18", epochs=3, train_size=[64, 64],
                    test_size=(32, 48), lr=0.001, lr_schedule="cosine", loss="spatial_ce", sigma=1.5, folds=2,
                    fold=1, seed=3, val_fraction=0.0, train_limit=5, precise_bn=True, extra={"annotator": "senior"},
                    init="runs/x/checkpoint.pt", encoder_weights="imagenet", patience=0)
    assert cfg.run_hash("fp2") == "ed1d252dd307165f"


def test_the_run_notebook_takes_the_config_in_one_parameter():
    source = (REPO / "notebooks" / "train_evaluate.py").read_text()
    cell = source.split('# %% tags=["parameters"')[1].split("# %%")[0]
    names = {t.id for node in ast.parse(cell.split("\n", 1)[1]).body for t in node.targets}
    assert names == {"config", "run_id", "study", "profile_note"}
    assert "RunConfig.from_dict({**config, **given})" in source  # single fields (-p NAME VALUE) win
