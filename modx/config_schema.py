"""The config's schema: one pydantic model per table of a train config (the top level and
the sections ``[modx]``, ``[lwf]``, ``[rkd]``, ``[ewc]``, ``[replay]``), one built per method
from its own declared ``options``, and the one-line refusal a failed check becomes.

The models check; ``modx.config.TrainConfig`` holds the values and their defaults."""

from __future__ import annotations

import functools
import types
import typing
from typing import Annotated, Any, ClassVar, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

__all__ = ["SCHEMA", "SECTIONS", "RENAMED", "TABLE_OF", "Table", "Settings", "bounds_text",
           "key_name", "options_model", "refusal", "type_text"]


class Table(BaseModel):
    """One table of the config schema: its keys, their types and allowed ranges. Types are
    strict (``true`` is no integer, ``2.5`` no batch size, ``"1"`` no number), numbers finite;
    a field's ``description`` is the hint a refusal adds (``0: no clipping``)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True,
                              validate_by_name=True, validate_by_alias=False,
                              loc_by_alias=False, protected_namespaces=())
    table: ClassVar[str | None] = None  # the TOML section, ``[table]``; None: the top level


def _hint(text: str, **bounds: Any) -> Any:
    return Field(description=text, **bounds)


class Settings(Table):
    """The top-level keys: data, model, optimisation, the data path, logging."""

    data: str
    phases: str
    eval_data: list[str]
    eval_n: int | None = Field(ge=1)
    linear_probe: bool
    model: str | None
    init: str | None
    base_data: str | None
    methods: list[str]
    phase0_steps: int = Field(ge=0)
    phase0_lr: float = Field(gt=0)
    steps: int = Field(ge=0)
    epochs: float | None = Field(gt=0)
    lr: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    weight_decay: float = Field(ge=0)
    eps: float = Field(gt=0)
    warmup: float = _hint("a share of the steps", ge=0, lt=1)
    grad_accum: int = Field(ge=1)
    optimizer: Literal["openclip", "official"]
    clip_grad: float | None = _hint("0: no clipping", ge=0)
    precision: Literal["fp32", "amp_bf16"]
    seed: int = Field(ge=0, lt=2**32)  # a training seed also seeds numpy, which takes [0, 2^32)
    device: str | None
    workers: int | None = _hint("0: decode in the training process", ge=0)
    preload_gb: float = _hint("0: never keep a phase's images in memory", ge=0)
    augment: bool
    dist_timeout_min: float = Field(gt=0)
    method_options: dict
    out: str
    checkpoint_every: int = _hint("0: only at a phase's end", ge=0)
    log_every: int = Field(ge=0)
    tensorboard: bool
    quiet: bool


class ModxTable(Table):
    """``[modx]``: Mod-X's alignment loss."""

    table = "modx"
    alpha: float = Field(ge=0)
    temperature: float = Field(gt=0)
    reduction: Literal["sum", "mean"]
    exclude_diagonal: bool
    teacher_cache: bool


class LwfTable(Table):
    """``[lwf]``: LwF's distillation; its ``temperature`` is the field ``lwf_temperature``."""

    table = "lwf"
    lwf_weight: float = Field(ge=0)
    lwf_temperature: float = Field(gt=0, alias="temperature")


class RkdTable(Table):
    """``[rkd]``: relational distillation."""

    table = "rkd"
    rkd_weight: float = Field(ge=0)


class EwcTable(Table):
    """``[ewc]``: the elastic weight penalty and the batches its Fisher estimate reads."""

    table = "ewc"
    ewc_lambda: float = Field(ge=0)
    ewc_batches: int = Field(ge=1)


class ReplayTable(Table):
    """``[replay]``: the buffer of earlier phases' items and its share of a batch."""

    table = "replay"
    replay_size: int = Field(ge=1)
    replay_fraction: float = Field(ge=0, lt=1)


# the config schema: the top level, then the sections, each field of TrainConfig in one of them
SCHEMA: tuple[type[Table], ...] = (Settings, ModxTable, LwfTable, RkdTable, EwcTable,
                                   ReplayTable)
# the sections a config may have, each with the keys it may hold (a method's knobs under the
# method's name); everything else at the top level
SECTIONS = {m.table: tuple(f.alias or n for n, f in m.model_fields.items())
            for m in SCHEMA if m.table}
# a section's key that names another field: [lwf] temperature is LwF's own
RENAMED = {(m.table, f.alias): n for m in SCHEMA if m.table
           for n, f in m.model_fields.items() if f.alias}
TABLE_OF = {n: m for m in SCHEMA for n in m.model_fields}  # field -> the model that holds it


def key_name(model: type[Table], name: str) -> str:
    """A field as a config writes it: ``lr``, ``[modx] alpha``, ``[lwf] temperature``."""
    field = model.model_fields.get(name)
    key = (field.alias if field else None) or name
    return f"[{model.table}] {key}" if model.table else key


def _num(x) -> str:
    return "2^32" if x == 2**32 else f"{x:g}"


def bounds_text(model: type[Table], name: str) -> str:
    """A field's allowed range as the refusals write it: ``> 0``, ``in [0, 1)``; or ''."""
    lo = hi = None
    for m in model.model_fields[name].metadata:
        for attr, side, sign in (("gt", "lo", "("), ("ge", "lo", "["),
                                 ("lt", "hi", ")"), ("le", "hi", "]")):
            if getattr(m, attr, None) is not None:
                if side == "lo":
                    lo = (getattr(m, attr), sign)
                else:
                    hi = (getattr(m, attr), sign)
    if lo and hi:
        return f"in {lo[1]}{_num(lo[0])}, {_num(hi[0])}{hi[1]}"
    if lo:
        return f"{'>' if lo[1] == '(' else '>='} {_num(lo[0])}"
    if hi:
        return f"{'<' if hi[1] == ')' else '<='} {_num(hi[0])}"
    return ""


def _or(words) -> str:
    words = list(words)
    return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]


def type_text(annotation) -> str:
    """What a field's type asks for, in words: ``an integer or left out``, ``fp32 or
    amp_bf16``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return _or(str(a) for a in args)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return _or(type_text(a) for a in args)
    if origin is list:
        return "a list of strings"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "left out", dict: "a table of method sections",
            list: "a list"}.get(annotation, "valid")


def refusal(model: type[Table], values: dict, exc: ValidationError, what: str = "") -> str:
    """A pydantic ValidationError as one line naming the key as a config writes it."""
    err = exc.errors()[0]
    name = str(err["loc"][0])
    if err["type"] == "extra_forbidden":
        return (f"{name!r} is not a setting of {what}; it takes "
                f"{', '.join(model.model_fields)}")
    key, value, field = key_name(model, name), values[name], model.model_fields[name]
    if err["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        hint = f" ({field.description})" if field.description else ""
        return f"{key} must be {bounds_text(model, name)}{hint}, got {value}"
    if err["type"] == "finite_number":
        return f"{key} must be a finite number, got {value}"
    return f"{key} must be {type_text(field.annotation)}, got {value!r}"


def _switch(value):
    """A method's boolean setting: true or false, or 1 or 0 as older plans wrote it."""
    if not isinstance(value, bool) and type(value) in (int, float) and value in (0, 1):
        return bool(value)
    return value


Switch = Annotated[bool, BeforeValidator(_switch)]


@functools.cache
def options_model(cls: Any) -> type[Table]:
    """The schema of a method's own settings (``[NAME]``), built from its declared defaults:
    a bool is a switch, a str a string, an int an integer, a float a number."""
    kinds = {bool: Switch, str: str, int: int, float: float}
    fields: dict = {k: (kinds.get(type(v), type(v) if v is not None else Any), v)
                    for k, v in cls.options.items()}
    model = pydantic.create_model(f"{cls.__name__}Options", __base__=Table, **fields)
    model.table = cls.name
    return model
