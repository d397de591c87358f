"""The study profile's JSON Schema: `xlm study schema` prints it, studies/profile.schema.json is
that output, every profile of studies/ names it on its first line and validates against it, and a
profile's mistakes are reported all at once, each with its path in the YAML."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.study.profile import profile_from_dict

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "studies" / "profile.schema.json"
PROFILES = sorted((REPO / "studies").glob("*.yaml"))
FIRST_LINE = "# yaml-language-server: $schema=./profile.schema.json"


def test_the_checked_in_schema_is_the_output_of_xlm_study_schema(capsys):
    assert main(["study", "schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == SCHEMA.read_text(), "regenerate: xlm study schema > studies/profile.schema.json"
    schema = json.loads(printed)
    jsonschema.Draft202012Validator.check_schema(schema)
    run = schema["$defs"]["RunLayer"]["properties"]
    assert run["epochs"]["minimum"] == 1 and run["epochs"]["default"] == 200  # RunConfig's range and default
    assert "Adam" in run["lr"]["description"]  # and its help


def test_the_reference_page_is_made_from_the_same_descriptions(capsys):
    assert main(["study", "schema", "--markdown"]) == 0
    page = capsys.readouterr().out
    assert page == (REPO / "docs" / "profile.md").read_text(), \
        "regenerate: xlm study schema --markdown > docs/profile.md"
    schema = json.loads(SCHEMA.read_text())
    for model in [schema, *schema["$defs"].values()]:
        for key, prop in model.get("properties", {}).items():
            assert f"| `{key}` |" in page, key  # every key, with its description (Markdown-escaped)
    run = schema["$defs"]["RunLayer"]["properties"]
    assert f"| `epochs` | integer >= 1 | `200` | {run['epochs']['description']} |" in page
    assert "datasets.&lt;d&gt;.root" in page  # not read as an HTML tag


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_profile_names_the_schema_and_validates_against_it(path):
    assert path.read_text().splitlines()[0] == FIRST_LINE
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def test_the_schema_refuses_what_the_checker_refuses():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    raw = yaml.safe_load((REPO / "studies" / "ci.yaml").read_text())
    raw["run"]["epochs"] = 0
    raw["run"]["learning_rate"] = 0.1
    assert {tuple(e.path) for e in validator.iter_errors(raw)} == {("run",), ("run", "epochs")}


def test_every_mistake_of_a_profile_is_reported_at_once_with_its_path():
    raw = {
        "name": "x", "data": "synthetic",
        "run": {"lr": "1e-4"},  # YAML text, not a number
        "transfer": {"targets": ["head"], "chains": [["imagenet", "hand", "head"]],
                     "finetune": {"head": {"epochs": 0}}},  # at least one epoch
        "execution": {"keep_checkpoints": "some"},  # all or needed
    }
    with pytest.raises(XLMError) as info:
        profile_from_dict(raw, source="studies/x.yaml")
    message = str(info.value)
    assert "studies/x.yaml: 3 problems" in message, message
    for line in ("studies/x.yaml: run.lr: expected a number, got text '1e-4' (YAML reads 1e-4 as text: write 1.0e-4)",
                 "studies/x.yaml: transfer.finetune.head.epochs: input should be greater than or equal to 1, got int 0",
                 "studies/x.yaml: execution.keep_checkpoints: input should be 'all' or 'needed', got str 'some'"):
        assert line in message, message
    assert [path for path, _ in info.value.problems] == ["run.lr", "transfer.finetune.head.epochs",
                                                         "execution.keep_checkpoints"]
