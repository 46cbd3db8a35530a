"""Parsed JSON checked against a type annotation: the validation behind `Record.from_dict`
(shared/records.py), also used on its own for a config's fields. A value is returned converted
(an int where a float is annotated becomes a float, a dataclass is built) or a ProtocolError
names the path to the field at fault. Kept to the typing forms used in this package (Python 3.8:
typing.List/Dict/Optional, no `X | Y`).
"""
import dataclasses
import typing
from typing import Any

from .errors import ProtocolError


def convert(tp: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) checked against the annotation `tp`; ProtocolError names `where`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:  # Optional[X]
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return convert(inner[0], value, where)
    if origin in (list, typing.List):
        if not isinstance(value, list):
            raise ProtocolError("{}: expected a list, got {}".format(where, type(value).__name__))
        return [convert(args[0], v, "{}[{}]".format(where, i)) for i, v in enumerate(value)]
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ProtocolError("{}: expected an object, got {}".format(where, type(value).__name__))
        return {str(k): convert(args[1], v, "{}.{}".format(where, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProtocolError("{}: expected a number, got {!r}".format(where, value))
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError("{}: expected an integer, got {!r}".format(where, value))
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ProtocolError("{}: expected {}, got {!r}".format(where, tp.__name__, value))
        return value
    raise TypeError("unsupported annotation {!r} at {}".format(tp, where))


def _convert_dataclass(cls: Any, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ProtocolError("{}: expected an object, got {}".format(where, type(value).__name__))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ProtocolError("{}: unknown field(s) {}".format(where, ", ".join(unknown)))
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = convert(hints[name], value[name], "{}.{}".format(where, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise ProtocolError("{}: missing field '{}'".format(where, name))
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ProtocolError("{}: {}".format(where, e)) from None
