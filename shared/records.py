"""Typed, versioned JSON records: one mixin gives to_dict / from_dict / save / load.

`from_dict` validates every field against its annotation (shared/typed_json.py), so a spec or
result read from disk is either well formed or rejected with a message naming the field.
"""
import dataclasses
import json
from typing import Any, Dict, Type, TypeVar

from . import atomic
from .errors import ProtocolError
from .typed_json import convert

R = TypeVar("R", bound="Record")


class Record:
    """Mixin for dataclasses that travel as JSON between coordinator and runners."""

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: Type[R], data: Any) -> R:
        return convert(cls, data, cls.__name__)

    def save(self, path: str) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls: Type[R], path: str) -> R:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise ProtocolError("cannot read {}: {}".format(path, e)) from None
        return cls.from_dict(data)


def write_json_atomic(path: str, data: Any) -> None:
    """Write JSON so that a reader never sees half a file (shared/atomic.py: temp, fsync, rename)."""
    def write(f: Any) -> None:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=False, default=str)
        f.write("\n")

    atomic.write_file(path, write, mode="w")
