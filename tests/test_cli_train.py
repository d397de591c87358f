"""``xlm train``'s options: defaults shown, every option described, --root only where needed."""

from __future__ import annotations

import argparse

import pytest

from xlm_core import XLMError
from xlm_core.cli import build_parser
from xlm_core.cli.train import config_from_args


def _train_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_every_option_is_described_and_run_defaults_are_shown():
    train = _train_parser()
    for action in train._actions:
        assert action.help, f"{action.option_strings} has no description"
    text = train.format_help()
    for shown in ("(default: 200)", "(default: 2)", "(default: 0.0001)", "(default: plateau)",
                  "(default: 512 512)", "XLM_PROGRESS=1"):
        assert shown in " ".join(text.split()), shown


def test_root_is_needed_for_the_named_datasets_only(tmp_path):
    train = _train_parser()
    args = train.parse_args(["--dataset", str(tmp_path / "dataset.yaml"), "--out", str(tmp_path / "o")])
    assert config_from_args(args).root == ""
    args = train.parse_args(["--dataset", "head", "--out", str(tmp_path / "o")])
    with pytest.raises(XLMError, match="--root is needed for dataset 'head'"):
        config_from_args(args)
    args = train.parse_args(["--dataset", "head", "--root", "/d", "--out", "o", "--val-fraction", "0"])
    assert config_from_args(args).val_fraction == 0.0


def test_study_run_and_book_build_share_one_results_flag_and_default():
    parser = build_parser()
    study = parser.parse_args(["study", "run", "demo"])
    book = parser.parse_args(["book", "build"])
    assert study.results == book.results_root == "results"
    assert parser.parse_args(["book", "build", "--results", "/r"]).results_root == "/r"
    assert parser.parse_args(["study", "run", "demo", "--results", "/r"]).results == "/r"


def test_every_option_of_every_command_is_described():
    def walk(parser: argparse.ArgumentParser, name: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    yield from walk(child, f"{name} {sub}")
            elif action.dest != "help":
                yield name, action

    missing = [f"{name} {a.option_strings or a.dest}" for name, a in walk(build_parser(), "xlm") if not a.help]
    assert not missing, missing
