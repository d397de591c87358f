"""Settings files checked the pydantic way, their mistakes told one way.

Every settings file a user writes (a study profile, a run's settings and ``xlm train``'s flags,
a ``dataset.yaml``) is a pydantic model: constraints in its types and ``Field``\\ s, unknown keys
refused by ``extra="forbid"``, checks that span fields in validators raising :func:`problem`.
:func:`problems_of` turns pydantic's ValidationError into ``(path, problem)`` pairs, the one
formatting of them all: the YAML path (``transfer.chains[0][1]``), pydantic's message, and the
value given (``got int 0``); an unknown key also lists the keys allowed there.
:class:`SettingsError` reports every problem at once, naming the file.
"""

from __future__ import annotations

import reprlib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from xlm_core import XLMError

STRICT = ConfigDict(strict=True, extra="forbid")
"""Values are not converted (1 is not true, "1e-4" is not a number) and unknown keys are refused."""

PROBLEM = "settings"  # the error type of this project's own checks: their message is kept whole
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict = 60, 60, 6, 4


class SettingsError(XLMError):
    """A settings file refused: ``problems``, every ``(path, problem)`` found, in the file's order.
    Its message: ``<what>: <path>: <problem>`` a line (led by ``<what>: N problems`` when several)."""

    def __init__(self, what: str, problems: list[tuple[str, str]]):
        self.what, self.problems = what, problems
        lines = [f"{what}: {path + ': ' if path else ''}{text}" for path, text in problems]
        if len(lines) > 1:
            lines.insert(0, f"{what}: {len(lines)} problems")
        super().__init__("\n".join(lines))


def problem(message: str) -> PydanticCustomError:
    """The error a validator raises for a check of its own (the message says it all, value included)."""
    return PydanticCustomError(PROBLEM, message)  # no context: the message is not formatted


def problem_at(loc: tuple, message: str, value: Any = None) -> InitErrorDetails:
    """:func:`problem` at ``loc``, relative to the model being validated (see :func:`raise_problems`)."""
    return InitErrorDetails(type=problem(message), loc=loc, input=value)


def raise_problems(title: str, errors: list[InitErrorDetails]) -> None:
    """Raise every error at once from a validator (pydantic prefixes their paths), if any."""
    if errors:
        raise ValidationError.from_exception_data(title, errors)


def yaml_path(loc: tuple) -> str:
    """``('transfer', 'chains', 0, 1)`` -> ``transfer.chains[0][1]`` (union branch tags and
    dict-key markers left out)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (part.startswith(("~", "function-")) or part == "[key]"):
            out += f".{part}" if out else str(part)
    return out


def shown(value: Any) -> str:
    """A value given, as a message shows it: ``int 0``, ``str '1e-4'``, ``null``."""
    return "null" if value is None else f"{type(value).__name__} {_SHOW.repr(value)}"


def problems_of(exc: ValidationError, model: Any = None) -> list[tuple[str, str]]:
    """Every ``(path, problem)`` of a ValidationError of ``model`` (the class validated, which
    names the keys allowed where an unknown one is found), duplicates left out."""
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        kind, loc = err["type"], err["loc"]
        if kind == PROBLEM:
            text = err["msg"]
        elif kind in ("missing", "missing_argument"):
            text = "missing"
        elif kind in _UNKNOWN:
            allowed = keys_at(model, loc[:-1])
            text = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        else:
            text = f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {shown(err.get('input'))}"
        if (yaml_path(loc), text) not in out:
            out.append((yaml_path(loc), text))
    return out


def keys_at(model: Any, loc: tuple) -> tuple[str, ...]:
    """The keys a model allows at ``loc`` (a path into it), ``()`` where no model is there."""
    candidates = [model]
    for part in loc:
        if isinstance(part, str) and part.startswith("~"):
            continue  # a union branch's tag: the value's own place is next
        nxt = []
        for t in _members(candidates):
            fields = _fields(t)
            if fields is not None and isinstance(part, str):
                nxt += [fields[part].annotation] if part in fields else []
            elif typing.get_origin(t) is dict:
                nxt.append(typing.get_args(t)[1])
            elif typing.get_origin(t) in (list, tuple) and isinstance(part, int):
                nxt += list(typing.get_args(t)[:1])
        candidates = nxt
    return next((tuple(f) for t in _members(candidates) if (f := _fields(t))), ())


def _members(types_: list) -> list:
    """The types a list of annotations can hold: Annotated and unions unwrapped."""
    out = []
    for t in types_:
        while typing.get_origin(t) is Annotated:
            t = typing.get_args(t)[0]
        if typing.get_origin(t) in (typing.Union, types.UnionType):
            out += _members(list(typing.get_args(t)))
        else:
            out.append(t)
    return out


def _fields(t: Any) -> dict | None:
    """A model's (or pydantic dataclass's) fields, None for other types."""
    if isinstance(t, type) and issubclass(t, BaseModel):
        return t.model_fields
    return getattr(t, "__pydantic_fields__", None) if isinstance(t, type) else None


__all__ = ["PROBLEM", "STRICT", "SettingsError", "keys_at", "problem", "problem_at", "problems_of",
           "raise_problems", "shown", "yaml_path"]
