"""The pieces every params section model is built from: strict JSON types, the safe-name pattern, the one-line
error a failed check becomes, and the cleaning that turns pydantic's JSON schema into params.schema.yaml.

Why a module of its own: every section module (``elicit.plan``, ``elicit.optimize.config``, ...) builds its model
from these, while :mod:`elicit.config` loads params and resolves runs over all of them; keeping the shared types
here keeps both short and free of import cycles.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
from collections.abc import Callable, Iterable, Mapping
from typing import (
    Annotated,
    Any,
    Literal,
    NoReturn,
    Required,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
)

from pydantic import ConfigDict, Field, Strict, StringConstraints, TypeAdapter, ValidationError
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from typing_extensions import TypedDict, get_type_hints, is_typeddict

from elicit.errors import ElicitError


class ParamsError(ElicitError, ValueError):
    """A params.yaml problem, stated in one line with the key and the fix."""


T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- shared types

NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]*$"
NAME_DESCRIPTION = (
    "names of runs, datasets, oracles and optimize configs: letters, digits, _ and -, no dots or slashes (they "
    "build folder and file names such as results/<run>/labels/<config>/ and telemetry/optimize.<config>.json)"
)


def name_pattern() -> str:
    """The one pattern of run, dataset, oracle and config names (``$defs.name`` of the schema): no dots or slashes,
    because names build paths (``results/<run>/labels/<config>/``, ``telemetry/optimize.<config>.json``)."""
    return NAME_PATTERN


# JSON types, checked as JSON Schema does: no "4" for 4, no true for 1; an integer is a number.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
NonEmptyStr = Annotated[str, Strict(), StringConstraints(min_length=1)]
Name = Annotated[str, Strict(), StringConstraints(pattern=NAME_PATTERN)]
HiddenStr = SkipJsonSchema[Str]
"""A field the code sets and params.yaml never writes (an entry's ``name`` is its key): left out of the schema."""

SECTION = ConfigDict(extra="forbid", hide_input_in_errors=True, allow_inf_nan=False)
"""Config of every params model: unknown keys fail, floats are finite, a value is never echoed by pydantic itself
(the one-line messages below decide what is shown, and never show ``api_key_env``)."""


# ---------------------------------------------------------------------------------------------- one-line errors

API_KEY_ENV_NAME = "must be the NAME of an environment variable (like OPENAI_API_KEY), not the key itself"
_JSON_TYPES = {
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "float_parsing": "number",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "string_type": "string",
    "list_type": "array",
    "tuple_type": "array",
    "set_type": "array",
    "dict_type": "object",
    "dataclass_type": "object",
    "dataclass_exact_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def _nearest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def fail(loc: tuple[str | int, ...], message: str, value: Any = None) -> NoReturn:
    """Fail a check at ``loc`` (relative to the model being validated) with ``message`` as the whole problem; inside
    a validator the location joins the outer one, so the line names the full key."""
    error = InitErrorDetails(type=PydanticCustomError("params", message), loc=loc, input=value)
    raise ValidationError.from_exception_data("params", [error])


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` as ``X``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


_SKIP: type = cast(type, SkipJsonSchema)


def _hidden(info: Any) -> bool:
    return any(isinstance(m, _SKIP) for m in getattr(info, "metadata", ()))


def _keys(tp: Any) -> dict[str, Any] | None:
    """The keys a mapping type (a section, a partial section, a model) accepts, with their types."""
    tp = _unwrap(tp)
    fields = getattr(tp, "__pydantic_fields__", None)
    if isinstance(fields, dict):
        return {name: info.annotation for name, info in fields.items() if not _hidden(info)}
    if is_typeddict(tp):
        return dict(get_type_hints(tp))
    return None


def _type_at(root: Any, loc: tuple[str | int, ...]) -> Any:
    """The declared type of the value at ``loc`` below ``root`` (None where the walk cannot follow)."""
    tp = root
    for part in loc:
        tp = _unwrap(tp)
        keys = _keys(tp)
        if keys is not None:
            tp = keys.get(str(part))
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) in (list, tuple) and get_args(tp):
            tp = get_args(tp)[0]
        else:
            return None
        if tp is None:
            return None
    return tp


def _literals(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    return [str(a) for a in get_args(tp)] if get_origin(tp) is Literal else []


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _unsafe(name: Any) -> str:
    return (
        f"{name!r} is not a safe name: use letters, digits, '_' and '-' only, starting with a letter or digit (no "
        "dots or slashes: names become folder and file names)"
    )


def _describe(err: ErrorDetails, root: Any) -> tuple[tuple[str | int, ...], str]:
    """One pydantic error as (the key it is about, what is wrong), in JSON Schema's words where it has them."""
    loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if loc and loc[-1] == "[key]":  # a mapping's key: the message names it, the path is the mapping
        key, parent = loc[-2], loc[:-2]
        if kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
            return parent, _unsafe(key)
        mapping = get_args(_unwrap(_type_at(root, parent)))  # (key type, value type) of a dict
        options = _literals(mapping[0]) if kind == "literal_error" and mapping else []
        if options:
            return parent, f"{key!r} is not allowed; {_nearest(str(key), options)}use one of: {', '.join(options)}"
        return parent, f"{key!r}: {err['msg']}"
    if kind in ("params", "value_error", "assertion_error"):  # a check's own message
        return loc, str(ctx.get("error", err["msg"])) if kind != "params" else err["msg"]
    if "api_key_env" in loc:  # the value may be a pasted key: never echo it
        return loc, API_KEY_ENV_NAME
    if kind == "missing":
        return loc[:-1], f"{str(loc[-1])!r} is a required property"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        parent = _unwrap(_type_at(root, loc[:-1]))
        known = list(_keys(parent) or {})
        noun = getattr(parent, "__params_noun__", "key")
        return loc, f"unknown {noun} {str(loc[-1])!r}; {_nearest(str(loc[-1]), known)}known {noun}s: {', '.join(known)}"
    if kind in _JSON_TYPES:
        if value is None:
            return loc, "must not be null; set a value"
        return loc, f"{_shown(value)} is not of type {_JSON_TYPES[kind]!r}"
    shown = _shown(value)
    bounds = {
        "greater_than_equal": ("ge", "is less than the minimum of"),
        "greater_than": ("gt", "is less than or equal to the minimum of"),
        "less_than_equal": ("le", "is greater than the maximum of"),
        "less_than": ("lt", "is greater than or equal to the maximum of"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        return loc, f"{shown} {words} {_num(ctx.get(key))}"
    if kind == "finite_number":
        return loc, f"{shown} is not a finite number"
    if kind in ("too_short", "string_too_short"):
        if not value:
            return loc, f"{shown} should be non-empty"
        return loc, f"{shown} is too short (at least {ctx.get('min_length')})"
    if kind in ("too_long", "string_too_long"):
        return loc, f"{shown} is too long (at most {ctx.get('max_length')})"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == NAME_PATTERN:
            return loc, _unsafe(value)
        return loc, f"{shown} does not match {ctx.get('pattern')!r}"
    if kind == "literal_error":
        options = _literals(_type_at(root, loc))
        if options:
            near = _nearest(value, options) if isinstance(value, str) else ""
            return loc, f"{shown} is not allowed; {near}use one of: {', '.join(options)}"
    return loc, err["msg"]


def problem(exc: ValidationError, root: Any) -> tuple[tuple[str | int, ...], str]:
    """The first problem of a failed check (the one nearest the top), as (key path, what is wrong)."""
    errors = exc.errors()
    locs = [tuple(err["loc"]) for err in errors]
    # a list too short "after validation" only because an item failed: the item's error says more
    errors = [
        err
        for err, loc in zip(errors, locs, strict=True)
        if not (err["type"] == "too_short" and any(o[: len(loc)] == loc and len(o) > len(loc) for o in locs))
    ]

    def order(err: ErrorDetails) -> tuple[int, int]:
        """Nearest the top first; at one depth an unknown key before a missing one (it is usually its typo)."""
        loc = tuple(err["loc"])
        depth = len(loc) - (1 if loc and loc[-1] == "[key]" else 0)
        rank = {"extra_forbidden": 0, "unexpected_keyword_argument": 0, "missing": 2}.get(err["type"], 1)
        return depth, rank

    return _describe(min(errors, key=order), root)


def key_path(*parts: Any) -> str:
    """``a.b.c`` from path parts (empty ones dropped); ``(top level)`` for none."""
    return ".".join(str(p) for p in parts if p != "") or "(top level)"


def problem_line(exc: ValidationError, root: Any, where: str = "") -> str:
    """``<dotted.key.path>: <what is wrong>`` for a failed check of ``root`` found at ``where`` in params.yaml."""
    loc, message = problem(exc, root)
    return f"{key_path(where, *loc)}: {message}"


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def validate(tp: Callable[..., T] | Any, data: Any) -> T:
    """``data`` validated as ``tp``, pydantic's ValidationError unconverted (for checks that locate it further)."""
    return _adapter(tp).validate_python(data)  # type: ignore[no-any-return]


def build(
    tp: Callable[..., T] | Any,
    data: Any,
    where: str,
    error: type[Exception] = ParamsError,
    *,
    hidden: Mapping[str, Any] | None = None,
) -> T:
    """``data`` (a params mapping found at ``where``) validated as ``tp``; a failed check raises ``error`` with one
    line naming the key. ``hidden`` fields (an entry's ``name``: its key) are set here and refused in ``data``."""
    if isinstance(data, Mapping) and hidden:
        clash = [k for k in hidden if k in data]
        if clash:
            known = [k for k in (_keys(tp) or {}) if k not in hidden]
            raise error(f"{key_path(where, clash[0])}: unknown key {clash[0]!r}; known keys: {', '.join(known)}")
        data = {**data, **hidden}
    try:
        return validate(tp, data)
    except ValidationError as exc:
        message = problem_line(exc, tp, where)
    raise error(message)


def typed(
    where: str | Callable[[dict[str, Any]], str], error: type[Exception] = ParamsError, *, noun: str = "key"
) -> Callable[[type[T]], type[T]]:
    """Make a pydantic dataclass a params section: a bad value given in code (``BudgetConfig(k_context=0)``,
    ``dataclasses.replace(cfg, ...)``) raises ``error`` in one line naming the key, as ``from_params`` does.
    ``where`` is the section's path in params.yaml (or makes it from the given values); ``noun`` names its keys in
    messages ("unknown loss name")."""

    def wrap(cls: type[T]) -> type[T]:
        if not getattr(cls, "__pydantic_complete__", False):  # a later rebuild would replace the __init__ below
            raise TypeError(f"{cls.__name__}: apply typed() to a complete pydantic dataclass")
        init = cls.__init__
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as exc:
                given = {**dict(zip(names, args, strict=False)), **kwargs}
                message = problem_line(exc, cls, where if isinstance(where, str) else where(given))
            else:
                return
            raise error(message)

        setattr(cls, "__init__", __init__)  # noqa: B010 - mypy refuses a direct assignment to a method
        setattr(cls, "__params_noun__", noun)  # noqa: B010
        return cls

    return wrap


_TypedDict: Any = TypedDict  # built from a class's fields at run time (mypy checks literal TypedDicts only)


def annotated(tp: Any, *metadata: Any) -> Any:
    """``Annotated[tp, *metadata]`` for a type built at run time (a :func:`partial`), which mypy cannot name."""
    return Annotated[(tp, *metadata)]


def entries(tp: Any, **constraints: Any) -> Any:
    """A mapping of safe names (:data:`Name`) to ``tp`` entries: runs, datasets, oracles, optimize configs."""
    return annotated(types.GenericAlias(dict, (Name, tp)), Field(**constraints))


def required(tp: Any) -> Any:
    """A key a :func:`partial` mapping must have."""
    return Required[tp]


def partial(
    cls: Any, name: str, *, drop: Iterable[str] = (), extra: Mapping[str, Any] | None = None, doc: str | None = None
) -> Any:
    """A mapping type of ``cls``'s keys, none required and none defaulted, each checked as in ``cls``: what
    overrides some of them (``oracle:`` over every oracle, the shared keys of ``optimize:``). ``extra`` adds or
    replaces keys (``typing_extensions.Required[...]`` for a required one)."""
    keys: dict[str, Any] = {}
    for field_name, info in cls.__pydantic_fields__.items():
        if field_name in drop or _hidden(info):
            continue
        keys[field_name] = Annotated[(info.annotation, *info.metadata, Field(description=info.description))]
    keys.update(extra or {})
    out = _TypedDict(name, keys, total=False)
    out.__pydantic_config__ = SECTION
    out.__doc__ = doc or cls.__doc__
    out.__module__ = cls.__module__
    out.__params_noun__ = getattr(cls, "__params_noun__", "key")
    return out


# ---------------------------------------------------------------------------------------------- JSON schema

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "propertyNames", "contains")
NAME_REF = {"$ref": "#/$defs/name"}
_SCHEMA_FRONT = ("$ref", "type", "enum")
_SCHEMA_BACK = ("description", "required", "minProperties", "propertyNames", "additionalProperties", "properties")
"""Key order of a schema node: what it is, its constraints, then what it says and holds (properties last)."""


def clean_schema(node: Any) -> Any:
    """pydantic's JSON schema as params.schema.yaml writes it: no titles and no defaults (Snakemake's validate()
    would write them into the params), ``type: [x, "null"]`` for a nullable scalar, and safe names as
    ``$ref: "#/$defs/name"`` (:func:`name_pattern` and the Snakefile's wildcard read that pattern)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "default"):
            continue
        if key in _SCHEMA_MAPS:
            out[key] = {k: clean_schema(v) for k, v in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [clean_schema(v) for v in value]
        elif key in _SCHEMA_ONE:
            out[key] = clean_schema(value)
        elif key == "description" and isinstance(value, str):
            out[key] = " ".join(value.split())
        else:
            out[key] = value
    members = out.get("anyOf")
    if isinstance(members, list) and len(members) == 2 and {"type": "null"} in members:
        other = next(m for m in members if m != {"type": "null"})
        if isinstance(other.get("type"), str):
            rest = {k: v for k, v in out.items() if k != "anyOf"}
            out = {"type": [other["type"], "null"], **{k: v for k, v in other.items() if k != "type"}, **rest}
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
    if out.get("type") == "string" and out.get("pattern") == NAME_PATTERN:
        out = {**NAME_REF, **{k: v for k, v in out.items() if k not in ("type", "pattern")}}
    names = out.get("patternProperties")
    if isinstance(names, dict) and list(names) == [NAME_PATTERN]:
        entries = out.pop("patternProperties")[NAME_PATTERN]
        out["propertyNames"] = dict(NAME_REF)
        out["additionalProperties"] = entries
    front = [k for k in _SCHEMA_FRONT if k in out]
    back = [k for k in _SCHEMA_BACK if k in out]
    middle = [k for k in out if k not in front and k not in back]
    return {k: out[k] for k in [*front, *middle, *back]}


def entry_schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of one params entry of type ``tp`` (e.g. ``datasets.<name>``), cleaned like the whole one."""
    return dict(clean_schema(TypeAdapter(tp).json_schema()))
