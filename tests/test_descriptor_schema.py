"""The dataset.yaml's JSON Schema: `xlm data schema` prints it, studies/dataset.schema.json and its
packaged copy xlm_core/datasets/dataset.schema.json are that output, every built-in descriptor
names the packaged copy on its first line and validates against it, and the schema refuses the
mistakes the checker refuses."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from xlm_core import XLMError
from xlm_core.cli import main
from xlm_core.datasets.descriptor import BUILTIN_DIR, SCHEMA_FILE, parse_descriptor

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = [REPO / "studies" / "dataset.schema.json", SCHEMA_FILE]
BUILTINS = sorted(BUILTIN_DIR.glob("*.yaml"))
FIRST_LINE = "# yaml-language-server: $schema=../dataset.schema.json"


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


@pytest.mark.parametrize("path", SCHEMAS, ids=["studies", "package"])
def test_the_checked_in_schema_is_the_output_of_xlm_data_schema(path, capsys):
    assert main(["data", "schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == path.read_text(), ("regenerate: xlm data schema | tee studies/dataset.schema.json "
                                         "> xlm_core/datasets/dataset.schema.json")
    schema = json.loads(printed)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["images", "annotations", "landmarks"] and schema["additionalProperties"] is False
    assert "mm per original pixel" in schema["properties"]["spacing_mm"]["description"]  # the field's description


def test_the_reference_page_is_made_from_the_same_descriptions(capsys):
    assert main(["data", "schema", "--markdown"]) == 0
    page = capsys.readouterr().out
    assert page == (REPO / "docs" / "dataset.md").read_text(), \
        "regenerate: xlm data schema --markdown > docs/dataset.md"
    schema = json.loads(SCHEMA_FILE.read_text())
    for model in [schema, *schema["$defs"].values()]:
        for key in model.get("properties", {}):
            assert f"| `{key}` |" in page, key
    assert f"| `spacing_mm` | number > 0 or [SpacingPair](#spacingpair) or null | `null` | " \
           f"{schema['properties']['spacing_mm']['description']} |" in page


@pytest.mark.parametrize("path", BUILTINS, ids=[p.stem for p in BUILTINS])
def test_every_builtin_descriptor_names_the_schema_and_validates_against_it(path):
    assert path.read_text().splitlines()[0] == FIRST_LINE
    assert (path.parent / FIRST_LINE.split("=", 1)[1]).resolve() == SCHEMA_FILE
    errors = _validator().iter_errors(yaml.safe_load(path.read_text()))
    assert [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors] == []


def test_the_schema_refuses_what_the_checker_refuses():
    raw = yaml.safe_load((BUILTIN_DIR / "hand.yaml").read_text())
    raw["name"] = "my_hand"
    raw["annotations"]["format"] = "pts"  # no such format
    raw["spacing"] = 0.1  # spacing_mm
    raw["split"] = {"train": 1.5}  # neither a count nor a fraction
    assert {tuple(e.path) for e in _validator().iter_errors(raw)} == {(), ("annotations", "format"), ("split",)}
    with pytest.raises(XLMError) as info:
        parse_descriptor(raw, "my/dataset.yaml", None)
    assert [path for path, _ in info.value.problems] == ["annotations.format", "split.train", "spacing"]
    # what both accept: a count, a fraction, ids written as numbers
    for train in (120, 0.8, [1, "002"]):
        ok = {**raw, "annotations": {"format": "payer_csv", "sources": "all.csv"}, "split": {"train": train}}
        del ok["spacing"]
        assert list(_validator().iter_errors(ok)) == []
        parse_descriptor(ok, "my/dataset.yaml", None)
