"""The one formatting of a settings file's mistakes (xlm_core.validation): every problem at once,
each with its YAML path, pydantic's words and the value given; an unknown key names those allowed."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xlm_core import XLMError
from xlm_core.validation import STRICT, SettingsError, problem_at, problems_of, raise_problems


class Inner(BaseModel):
    model_config = STRICT
    epochs: int = Field(1, ge=1)
    loss: Literal["mse", "bce"] = "mse"


class PerName(Inner):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Inner] = Field(init=False)


class Outer(BaseModel):
    model_config = STRICT
    run: Inner = Inner()
    per: dict[str, Inner] = {}
    named: PerName = PerName()
    chains: list[list[str]] | None = None

    @model_validator(mode="after")
    def _chains(self) -> "Outer":
        raise_problems("outer", [problem_at(("chains", i), f"a chain names {c[0]!r} twice: {c}", c)
                                 for i, c in enumerate(self.chains or []) if len(set(c)) < len(c)])
        return self


def _problems(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(raw)
    return problems_of(info.value, Outer)


def test_every_problem_at_once_with_its_path_the_message_and_the_value():
    problems = _problems({"run": {"epochs": 0, "lr": 1, "loss": "l1"}, "per": {"a": {"foo": 1}},
                          "named": {"epochs": 2, "b": {"bar": 1}}, "zz": 1})
    assert problems == [
        ("run.epochs", "input should be greater than or equal to 1, got int 0"),
        ("run.loss", "input should be 'mse' or 'bce', got str 'l1'"),
        ("run.lr", "unknown key; allowed: epochs, loss"),
        ("per.a.foo", "unknown key; allowed: epochs, loss"),
        ("named.b.bar", "unknown key; allowed: epochs, loss"),  # a key of the model's other keys' kind
        ("zz", "unknown key; allowed: run, per, named, chains"),
    ]


def test_a_check_of_its_own_keeps_its_message_and_its_place():
    assert _problems({"chains": [["a", "b"], ["h", "h"]]}) == [("chains[1]", "a chain names 'h' twice: ['h', 'h']")]


def test_a_long_value_is_shortened_and_the_error_names_the_file():
    (path, text), = _problems({"run": {"epochs": "x" * 500}})
    assert path == "run.epochs" and text.startswith("input should be a valid integer, got str 'xxx") and len(text) < 120
    error = SettingsError("study profile a.yaml", [(path, text), ("", "nothing to run")])
    assert isinstance(error, XLMError)
    assert str(error).splitlines() == ["study profile a.yaml: 2 problems", f"study profile a.yaml: run.epochs: {text}",
                                       "study profile a.yaml: nothing to run"]


def test_the_reference_page_escapes_a_bar_once_however_deep_it_stands():
    from typing import Annotated

    from xlm_core.validation import schema_output

    class Axes(BaseModel):
        model_config = STRICT
        axes: list[Annotated[str, Field(pattern="^(x|y)$")]] = Field([], description="x|y, each")

    page = schema_output(Axes, "xlm test schema", markdown=True)
    assert "| `axes` | list of (text matching `^(x\\|y)$`) | `[]` | x\\|y, each |" in page, page
