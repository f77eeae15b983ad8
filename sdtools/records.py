"""Typed records of the JSON files sdtools and modx write, read and written field by field.

A record is a frozen dataclass whose fields are the keys of one JSON object, in the order the
file holds them. :meth:`Record.from_dict` checks every key (a missing key, an unknown key or a
value of another type is refused in one line naming the key and where it came from) and
:meth:`Record.to_dict` writes the same object back, key for key. Nothing is read from a
default: a key that a file may lack is declared so (:func:`absent`), and read as None.

Field declarations (``dataclasses.field`` metadata, made by :func:`spec`):

- ``absent``: the key may be missing; None stands for a missing key and is written as no key
  (such a key is never written as null);
- ``flat``: a record (or None) whose keys sit in this object beside the others; None when none
  of its keys is there, an error when only some are;
- ``key``: the JSON key where it is not the field's name (``class``).

Types read: ``int``, ``float`` (an integer is a number too), ``bool``, ``str``, ``X | None``,
``list[X]``, ``dict[str, X]``, dataclasses (read field by field) and ``Any`` (as it is).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

from .errors import UserError

R = TypeVar("R", bound="Record")


class RecordError(UserError):
    """A JSON object whose shape a record does not read: ``where`` (the key's path, from the
    file's name) and ``what`` (missing, unknown or of another type)."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


def spec(*, absent: bool = False, flat: bool = False, key: str | None = None) -> Any:
    """A field declaration (see the module docstring)."""
    return dataclasses.field(metadata={"absent": absent, "flat": flat, "key": key})


def absent() -> Any:
    """A key the object may lack (read as None, written as no key)."""
    return spec(absent=True)


def flat() -> Any:
    """A record whose keys sit beside this object's own (None: none of them there)."""
    return spec(flat=True)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, str, Any, bool, bool], ...]:
    """(name, key, type, absent, flat) per field of a dataclass."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, f.metadata.get("key") or f.name, hints[f.name],
                  bool(f.metadata.get("absent")), bool(f.metadata.get("flat")))
                 for f in dataclasses.fields(cls))


def _optional(tp) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            if len(args) != 1:
                raise TypeError(f"records read X | None of one type X, not {tp}")
            return args[0], True
    return tp, False


def _keys_of(cls: type) -> set[str]:
    """Every key a record's object may hold (flat records' keys included)."""
    out = set()
    for _, key, tp, _, is_flat in _fields(cls):
        out |= _keys_of(_optional(tp)[0]) if is_flat else {key}
    return out


def _required_of(cls: type) -> set[str]:
    out = set()
    for _, key, tp, is_absent, is_flat in _fields(cls):
        inner, opt = _optional(tp)
        if is_flat and not opt:
            out |= _required_of(inner)
        elif not is_flat and not is_absent:
            out.add(key)
    return out


_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
          list: "a list", dict: "an object"}


def _type_name(x) -> str:
    return "null" if x is None else type(x).__name__


def _value(x, tp, where: str):
    """``x`` checked against ``tp`` (records read field by field)."""
    if tp is Any:
        return x
    inner, opt = _optional(tp)
    if opt:
        return None if x is None else _value(x, inner, where)
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(x, list):
            raise RecordError(where, f"expected a list, got {_type_name(x)}")
        (arg,) = typing.get_args(tp) or (Any,)
        return [_value(v, arg, f"{where}[{i}]") for i, v in enumerate(x)]
    if origin is dict:
        if not isinstance(x, dict):
            raise RecordError(where, f"expected an object, got {_type_name(x)}")
        _, arg = typing.get_args(tp) or (str, Any)
        return {k: _value(v, arg, f"{where}.{k}") for k, v in x.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return read(tp, x, where)
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str),
          list: lambda v: isinstance(v, list), dict: lambda v: isinstance(v, dict)}.get(tp)
    if ok is None:
        raise TypeError(f"records do not read {tp!r}")
    if not ok(x):
        raise RecordError(where, f"expected {_NAMES[tp]}, got {_type_name(x)}")
    return x


def read(cls: type, d, where: str, _allowed: set[str] | None = None):
    """A record (any dataclass) from its JSON object, every key checked."""
    if not isinstance(d, dict):
        raise RecordError(where, f"expected an object, got {_type_name(d)}")
    missing = [k for k in _required_of(cls) if k not in d]
    if missing:
        order = [k for k in _ordered_keys(cls) if k in missing]
        raise RecordError(where, f"missing {', '.join(order)}")
    if _allowed is None:
        unknown = sorted(set(d) - _keys_of(cls))
        if unknown:
            raise RecordError(where, f"unknown key(s) {', '.join(unknown)}")
    values = {}
    for name, key, tp, is_absent, is_flat in _fields(cls):
        if is_flat:
            inner, opt = _optional(tp)
            there = _keys_of(inner) & set(d)
            values[name] = None if opt and not there else read(inner, d, where, there)
        elif key not in d:
            values[name] = None  # an absent() key
        elif is_absent and d[key] is None:
            raise RecordError(f"{where}.{key}", "null; leave the key out instead")
        else:
            values[name] = _value(d[key], tp, f"{where}.{key}")
    return cls(**values)


def _ordered_keys(cls: type) -> list[str]:
    out = []
    for _, key, tp, _, is_flat in _fields(cls):
        out += _ordered_keys(_optional(tp)[0]) if is_flat else [key]
    return out


def dump(x):
    """The JSON value of a record (any dataclass), a list or dict of them, or a plain value."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        out: dict[str, Any] = {}
        for name, key, _, is_absent, is_flat in _fields(type(x)):
            v = getattr(x, name)
            if is_flat:
                out.update({} if v is None else dump(v))
            elif not (is_absent and v is None):
                out[key] = dump(v)
        return out
    if isinstance(x, list):
        return [dump(v) for v in x]
    if isinstance(x, dict):
        return {k: dump(v) for k, v in x.items()}
    return x


class Record:
    """Base of the typed records: ``from_dict`` and ``to_dict`` (see the module docstring).
    Subclasses are frozen dataclasses."""

    @classmethod
    def from_dict(cls: type[R], d, where: str = "record") -> R:
        """Read from a JSON object; :class:`RecordError` names a missing, unknown or
        mistyped key, with ``where`` (the file, or the object's place in it) before it."""
        return typing.cast(R, read(cls, d, where))

    def to_dict(self) -> dict:
        """The JSON object, key for key as read."""
        return typing.cast(dict, dump(self))


__all__ = ["Record", "RecordError", "absent", "dump", "flat", "read", "spec"]
