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

import json
import reprlib
import types
import typing
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from xlm_core import XLMError

STRICT = ConfigDict(strict=True, extra="forbid")
"""Values are not converted (1 is not true, "1e-4" is not a number) and unknown keys are refused."""

# pydantic's Python words for a YAML file's kinds of value (its documented way: a message per error type)
YAML_WORDS = {"tuple_type": "input should be a list", "dict_type": "input should be a mapping",
              "model_type": "input should be a mapping", "model_attributes_type": "input should be a mapping",
              "dataclass_type": "input should be a mapping"}
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


def by_type(**tags: type | tuple[type, ...]) -> Discriminator:
    """A union validated by the one member its value's Python type picks (the first member for any
    other type), so that a mistake gets that member's error only; each member is tagged
    ``Tag("~name")``, and the tag stays out of the error's path (:func:`yaml_path`)."""

    def pick(value: Any) -> str:
        chosen = (tag for tag, kind in tags.items() if isinstance(value, kind))
        return f"~{next(chosen, next(iter(tags)))}"

    return Discriminator(pick)


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
    """A value given, as a message shows it: ``int 0``, ``str '1e-4'``, ``null`` (a tuple as the
    YAML list it was read from)."""
    value = list(value) if isinstance(value, tuple) else value
    return "null" if value is None else f"{type(value).__name__} {_SHOW.repr(value)}"


def problems_of(exc: ValidationError, model: Any = None) -> list[tuple[str, str]]:
    """Every ``(path, problem)`` of a ValidationError of ``model`` (the class validated, which
    names the keys allowed where an unknown one is found), the first of each path only (a key
    refused is not also reported as a value of the wrong type)."""
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        kind, loc = err["type"], err["loc"]
        if kind == PROBLEM:
            text = err["msg"]
        elif kind in ("missing", "missing_argument"):  # a key, or an item of a fixed-length list
            text = f"missing, got {shown(err.get('input'))}" if loc and isinstance(loc[-1], int) else "missing"
        elif kind in _UNKNOWN:
            allowed = keys_at(model, loc[:-1])
            text = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        else:
            words = YAML_WORDS.get(kind, err["msg"][:1].lower() + err["msg"][1:])
            text = f"{words}, got {shown(err.get('input'))}"
        if yaml_path(loc) not in {path for path, _ in out}:  # one problem a path: the first
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
            if fields is not None and isinstance(part, str):  # a field, or a key of its other keys' kind
                nxt += [fields[part].annotation] if part in fields else _extra_values(t)
            elif typing.get_origin(t) is dict:
                nxt.append(typing.get_args(t)[1])
            elif typing.get_origin(t) in (list, tuple) and isinstance(part, int):
                nxt += list(typing.get_args(t)[:1])
        candidates = nxt
    return next((tuple(f) for t in _members(candidates) if (f := _fields(t))), ())


def _extra_values(model: type) -> list:
    """The kind of value a model's other keys hold (``__pydantic_extra__: dict[str, X]``), if any."""
    try:
        extra = typing.get_type_hints(model).get("__pydantic_extra__")
    except (NameError, TypeError):
        return []
    return list(typing.get_args(extra)[1:2])


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


# ---------------------------------------------------------------------- the schema and its page


def schema_output(model: type[BaseModel], command: str, markdown: bool = False) -> str:
    """What ``command`` (``xlm study schema``, ``xlm data schema``) prints: the JSON Schema of a
    settings file (draft 2020-12), as checked in, or with ``markdown`` its reference page."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
    return schema_markdown(schema, f"{command} --markdown") if markdown else json.dumps(schema, indent=2) + "\n"


def schema_markdown(schema: dict, command: str) -> str:
    """A reference page of a settings file, made from its JSON Schema (the fields' descriptions):
    a table of the keys at the top and one of each model it refers to (the keys of a model that
    extends another are listed once, with the other's)."""
    defs = schema.get("$defs", {})
    lines = [f"# {schema.get('title', 'settings')}: every key", "",
             f"<!-- made by `{command}`: edit the descriptions in the code, not this page -->", ""]
    for name, model in [(None, schema), *defs.items()]:
        props = model.get("properties", {})
        base = _base(model, defs)
        lines += [f"## {name or 'The file'}", "", _words(model.get("description")), ""]
        if base is not None:
            lines += [f"Every key of [{base}](#{base.lower()}), and:", ""]
            props = {k: v for k, v in props.items() if k not in defs[base]["properties"]}
        if isinstance(model.get("additionalProperties"), dict):
            lines += [f"Other keys: {_accepts(model['additionalProperties'])}.", ""]
        if props:
            lines += ["| key | accepts | default | what |", "|---|---|---|---|"]
            lines += [f"| `{key}` | {_cell(_accepts(p))} | {_default(p)} | {_words(p.get('description'))} |"
                      for key, p in props.items()]
            lines.append("")
    return "\n".join(lines).replace("\n\n\n", "\n\n")


def _words(text: str | None) -> str:
    """A description on one line, ``<d>`` kept visible (Markdown reads it as an HTML tag)."""
    return _cell(" ".join((text or "").split()).replace("<", "&lt;").replace(">", "&gt;"))


def _cell(text: str) -> str:
    """Text in a Markdown table's cell: a ``|`` of its own does not end the cell."""
    return text.replace("|", "\\|")


def _base(model: dict, defs: dict) -> str | None:
    """The largest model whose keys ``model`` has, and more (more keys, or any other key of a kind);
    on a tie, the one without other keys."""
    def open_(m: dict) -> bool:
        return isinstance(m.get("additionalProperties"), dict)

    props = model.get("properties", {})
    bases = [b for b, m in defs.items() if m.get("properties") and m["properties"].items() <= props.items()
             and (len(m["properties"]) < len(props) or open_(model) > open_(m))]
    return max(bases, key=lambda b: (len(defs[b]["properties"]), not open_(defs[b])), default=None)


def _accepts(p: dict) -> str:
    """What a JSON Schema accepts, in a few words (``integer >= 1``, ``"mse" or "bce"``)."""
    if "$ref" in p:
        name = p["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in p or "oneOf" in p:
        return " or ".join(_accepts(q) for q in p.get("anyOf", p.get("oneOf")))
    if "enum" in p or "const" in p:
        return " or ".join(f"`{json.dumps(v)}`" for v in p.get("enum", [p.get("const")]))
    kind = {"integer": "integer", "number": "number", "string": "text", "boolean": "true or false",
            "null": "null"}.get(p.get("type"), p.get("type", "any"))
    if p.get("type") == "array":
        size = ("non-empty " if p.get("minItems") == 1 else f"{p['minItems']}-item " if
                "minItems" in p and p["minItems"] == p.get("maxItems") else "")
        kind = (f"[{', '.join(_accepts(q) for q in p['prefixItems'])}]" if "prefixItems" in p else
                f"{size}list of {_inner(p.get('items', {}))}")
    elif p.get("type") == "object":
        values = p.get("additionalProperties")
        kind = ("non-empty " if p.get("minProperties") == 1 else "") + (
            f"mapping to {_inner(values)}" if isinstance(values, dict) else "mapping")
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    extra = [f"{op} {p[k]}" for k, op in bounds.items() if k in p]
    extra += [f"matching `{p['pattern']}`"] if "pattern" in p else []
    return " ".join([kind, *extra])


def _inner(p: dict) -> str:
    """:func:`_accepts` of an item or a value, in parentheses when it is more than a word."""
    text = _accepts(p)
    return f"({text})" if " " in text else text


def _default(p: dict) -> str:
    return f"`{json.dumps(p['default'])}`" if "default" in p else ""


__all__ = ["PROBLEM", "STRICT", "SettingsError", "by_type", "keys_at", "problem", "problem_at", "problems_of",
           "raise_problems", "schema_markdown", "schema_output", "shown", "yaml_path"]
