"""params.yaml: loading, the typed checks every section shares, and resolving one run's view of it.

Each section of params.yaml is a typed model (a frozen pydantic dataclass) in the module that uses it: ``budget:``
is :class:`elicit.plan.BudgetConfig`, ``optimize:`` :class:`elicit.optimize.OptimizeSection`, and so on.
:class:`elicit.params_model.Params` composes them, and ``workflow/schemas/params.schema.yaml`` (what Snakemake and
editors read) is generated from it: ``python -m elicit.params_model schema``. Every stage checks the whole params
with that model before it reads a key (DVC never validates), and a failed check is one line naming the key, the
problem and, for a typo, the nearest valid key.

This module holds what the sections share (the safe-name pattern, strict scalar types, the one-line error, moved
keys), the loading (``include:``, references between sections, run overrides) and :class:`RunConfig`. A run
(``runs.<run>``) names a dataset, an oracle, a size and a seed, and may override any section for itself
(``runs.<run>.overrides.<section>``), so one experiment never needs a second params file.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import hashlib
import os
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    NamedTuple,
    NoReturn,
    Required,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
)

import yaml
from pydantic import ConfigDict, Field, SkipValidation, Strict, StringConstraints, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from typing_extensions import TypedDict, get_type_hints, is_typeddict

from elicit.errors import ElicitError

if TYPE_CHECKING:
    from elicit.params_model import Params

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "params.schema.yaml"
"""The JSON schema generated from :class:`elicit.params_model.Params` (Snakemake, editors); never edited by hand."""

T = TypeVar("T")


class ParamsError(ElicitError, ValueError):
    """A params.yaml problem, stated in one line with the key and the fix."""


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


# ---------------------------------------------------------------------------------------------- moved keys


class Moved(NamedTuple):
    """Where a key of an older params.yaml lives now."""

    now: str
    """where it lives now, in words (completes "moved to ...")"""
    file: str | None = None
    """moved to this file: an error only where a params file includes that file and still holds the key (a file
    that includes nothing may hold it itself, as tests/fixtures/params.tiny.yaml does)"""


_ABLATE = (
    "the ablate stage, which refits the selected config without each loss term and from the inverted start "
    "(`uv run snakemake --cores 2 results/<run>/ablation`; study.ablate names the study's runs); delete this config"
)
MOVED_KEYS: dict[str, Moved] = {
    "optimize.configs.no_nuisance": Moved(_ABLATE),
    "optimize.configs.no_flip": Moved(_ABLATE),
    "optimize.configs.full_inverted_init": Moved(_ABLATE),
    "study": Moved("study.yaml, which params.yaml includes (include: [study.yaml])", file="study.yaml"),
}
"""Keys that lived at another path before (params.yaml of 572e4d8), and where they live now: found at the old
path, each is one line naming the new place. The study's runs moved to study.yaml with the ``study`` section; a run
defined in both files is refused by :func:`with_includes`."""


def moved_key(params: Any) -> tuple[tuple[str, ...], str] | None:
    """The first key of ``params`` still at a place it moved away from (not to a file), with the message."""
    for path, moved in MOVED_KEYS.items():
        if moved.file is not None:
            continue
        node = params
        parts = tuple(path.split("."))
        for part in parts:
            node = node.get(part) if isinstance(node, Mapping) else None
            if node is None:
                break
        else:
            return parts, f"moved to {moved.now}"
    return None


# ---------------------------------------------------------------------------------------------- loading


def validate_params(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Check params against the typed model of every section; raise one line naming the key, the problem and the
    fix (for a typo, the nearest valid key)."""
    model = _section_checks()
    try:
        model.model_validate(params)
    except ValidationError as exc:
        loc, message = problem(exc, model)
    else:
        return
    raise ParamsError(f"{source}: {key_path(*loc)}: {message}; fix this key (schema: {SCHEMA_PATH.name})")


SNAPSHOT_ENV = "ELICIT_PARAMS_SNAPSHOT"
"""Set by the Snakefile to the params it planned the run with; stages read these instead of a params.yaml that may
have been edited since the run started (elicit.stages._cli)."""


def snapshot_params(params: dict[str, Any], folder: Path | str = ".snakemake/elicit") -> Path:
    """Write the params a driver planned with to ``<folder>/params-<sha>.yaml`` (named by content, written once)."""
    text = yaml.safe_dump(params, sort_keys=True)
    path = Path(folder) / f"params-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise ParamsError(f"{path} not found; run from the repository root or pass --params PATH")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ParamsError(
            f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax"
        ) from None


INCLUDABLE = ("runs", "study", "datasets", "oracles")
"""Sections an included params file (``include:``) may hold; their entries join the main file's."""


def with_includes(params: dict[str, Any], base_dir: Path | str = ".", source: str = "params.yaml") -> dict[str, Any]:
    """The params with the files listed under ``include:`` merged in (the study's runs live in ``study.yaml``).

    An included file may hold only :data:`INCLUDABLE` sections; a name defined twice is an error, so a run means
    the same thing wherever it is read, and a section that moved to an included file (:data:`MOVED_KEYS`) may not
    stay in the main one. Paths are relative to the main file's folder.
    """
    includes = params.get("include") or []
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ParamsError(f"{source}: include: must be a list of params file paths, e.g. [study.yaml]")
    merged = copy.deepcopy(params)
    merged.pop("include", None)
    for name in includes:
        path = Path(base_dir) / name
        extra = _read_yaml(path)
        if not isinstance(extra, dict):
            raise ParamsError(f"{path} must be a mapping of sections ({', '.join(INCLUDABLE)})")
        for section, entries in extra.items():
            if section not in INCLUDABLE:
                raise ParamsError(
                    f"{path}: {section}: an included file may hold only {', '.join(INCLUDABLE)}; "
                    f"{_nearest(str(section), list(INCLUDABLE))}move it to {source}"
                )
            if not isinstance(entries, dict):
                raise ParamsError(f"{path}: {section}: must be a mapping")
            moved = MOVED_KEYS.get(section)
            if moved is not None and moved.file == Path(name).name and section in params:
                raise ParamsError(f"{source}: {section}: moved to {moved.now}; delete it from {source}")
            target = merged.setdefault(section, {})
            for key, value in entries.items():
                if key in target:
                    raise ParamsError(f"{path}: {section}.{key} is also defined in {source}; keep one of them")
                target[key] = value
    return merged


def load_params(path: Path | str = "params.yaml") -> dict[str, Any]:
    """Read params.yaml (with the files it includes) and validate it."""
    path = Path(path)
    params = _read_yaml(path)
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must be a mapping of sections (datasets, oracles, runs, ...)")
    params = with_includes(params, path.parent, str(path))
    validate_params(params, str(path))
    check_params(params, str(path))
    return params


def check_params(params: dict[str, Any], source: str = "params.yaml") -> None:
    """What the typed model cannot say: references between sections, reserved names, and each run's overrides
    checked like the sections they override. Snakemake calls it too (``workflow/rules/common.smk``)."""
    for run, entry in params["runs"].items():
        if entry["dataset"] not in params["datasets"]:
            known = ", ".join(sorted(params["datasets"]))
            raise ParamsError(
                f"{source}: runs.{run}.dataset: unknown dataset '{entry['dataset']}'; use one of: {known}"
            )
        if entry["oracle"] not in params["oracles"]:
            known = ", ".join(sorted(params["oracles"]))
            raise ParamsError(f"{source}: runs.{run}.oracle: unknown oracle '{entry['oracle']}'; use one of: {known}")
    for run in params["pipeline"]["default_runs"]:
        if run not in params["runs"]:
            raise ParamsError(f"{source}: pipeline.default_runs names unknown run '{run}'; add it under runs:")
    check_reserved_names(params, source)
    for run, entry in params["runs"].items():
        if entry.get("overrides"):
            check_overrides(params, run, source)


RESERVED_RUN_NAMES = ("study", "summary")
"""``results/study/`` and ``results/summary.*`` are the study's and the summary's own outputs."""


def check_reserved_names(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Names that would collide with a built-in output: an optimize config called like a method (its labels folder
    would be the method's), or a run called like a folder the study or summary writes."""
    from elicit.pipeline import BUILTIN_METHODS

    for name in params.get("optimize", {}).get("configs", {}) or {}:
        if name in BUILTIN_METHODS:
            raise ParamsError(
                f"{source}: optimize.configs.{name}: '{name}' is a built-in method's name (its labels live in "
                f"labels/{name}/); rename the config (reserved: {', '.join(BUILTIN_METHODS)})"
            )
    for name in params["runs"]:
        if name in RESERVED_RUN_NAMES:
            raise ParamsError(
                f"{source}: runs.{name}: '{name}' is reserved (results/{name}* is written by the {name} stage); "
                "rename the run"
            )


def _section_checks() -> type[Params]:
    """The typed model of the whole params, every section's own (:class:`elicit.params_model.Params`). Imported on
    use: it imports every section's module, some of which pull in torch, and it never changes a value a stage
    reads (tests/test_stage_sources.py does not follow imports from here)."""
    from elicit.params_model import Params

    return Params


def check_overrides(params: dict[str, Any], run: str, source: str = "params.yaml") -> None:
    """A run's overrides are checked exactly like the sections they override: the typed model over the params as
    the run sees them. Without this, ``overrides: {base: {seeds: []}}`` reached the stages. The line names the
    override (``runs.<run>.overrides.<section>``), then the key as the section's own check names it."""
    entry = params["runs"][run]
    view = resolve_run(params, run)
    merged = dict(params)
    for section in entry["overrides"]:
        merged[section] = view.section(section)
    if "oracle" in entry["overrides"] and view.oracle in params["oracles"]:
        merged["oracles"] = {view.oracle: params["oracles"][view.oracle]}  # only the run's own oracle meets them
    model = _section_checks()
    try:
        model.model_validate(merged)
    except ValidationError as exc:
        loc, message = problem(exc, model)
    else:
        return
    section = "oracle" if loc[:1] == ("oracles",) else key_path(*loc[:1])
    raise ParamsError(
        f"{source}: runs.{run}.overrides.{section}: {key_path(*loc)}: {message}; fix this key "
        f"(schema: {SCHEMA_PATH.name})"
    )


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@typed(lambda given: f"runs.{given.get('name')}")
@pydantic_dataclass(frozen=True, config=SECTION)
class RunConfig:
    """One experiment as its stages see it: a dataset + an oracle + a size, and its per-run overrides (built by
    :func:`resolve_run` from ``runs.<run>``, see :class:`elicit.params_model.RunEntry`)."""

    name: Name = Field(description="the run's key under runs: (it names the folder results/<run>/)")
    dataset: Str = Field(description="the dataset: a key of datasets:")
    oracle: Str = Field(description="the oracle: a key of oracles:")
    n: Int | None = Field(ge=1, description="items sampled from the dataset; None = all of them")
    seed: Int = Field(ge=0, description="seed of every stochastic step of the run (runs.<run>.seed, else base.seed)")
    positive_fraction: Float | None = Field(
        gt=0, lt=1, description="share of label 1 the sample is drawn to (gold-stratified in load); None = as drawn"
    )
    overrides: SkipValidation[dict[str, Any]] = Field(
        default_factory=dict, description="the run's own values of sections, deep-merged over them (section())"
    )
    params: SkipValidation[dict[str, Any]] = Field(
        default_factory=dict, repr=False, description="the whole (validated) params the run was resolved from"
    )

    def section(self, name: str) -> dict[str, Any]:
        """A params section as this run sees it (the run's overrides merged over the shared section)."""
        base = self.params.get(name, {})
        over = self.overrides.get(name)
        if over is None:
            return copy.deepcopy(base)
        if not isinstance(base, dict) or not isinstance(over, dict):
            return copy.deepcopy(over)
        return _deep_merge(base, over)

    @property
    def dataset_params(self) -> dict[str, Any]:
        return copy.deepcopy(self.params["datasets"][self.dataset])

    @property
    def oracle_params(self) -> dict[str, Any]:
        return copy.deepcopy(self.params["oracles"][self.oracle])


def resolve_run(params: dict[str, Any], run: str) -> RunConfig:
    """Look a run up by name; an unknown name is one line listing the known ones."""
    runs = params["runs"]
    if run not in runs:
        known = ", ".join(sorted(runs))
        raise ParamsError(f"unknown run '{run}'; use one of: {known} (or add runs.{run} to params.yaml)")
    entry = runs[run]
    base = params.get("base", {})
    return RunConfig(
        name=run,
        dataset=entry["dataset"],
        oracle=entry["oracle"],
        n=entry.get("n"),
        seed=int(entry.get("seed", base.get("seed", 0))),
        positive_fraction=entry.get("positive_fraction"),
        overrides=entry.get("overrides", {}) or {},
        params=params,
    )
