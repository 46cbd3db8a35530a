"""How a config file's (or report.json's) values become BenchConfig's types: paths, HxW sizes
and comma lists, beside JSON's own types (shared.typed_json.convert)."""
import os
import typing
from pathlib import Path
from typing import Any, List, Optional, Tuple

from shared.errors import ProtocolError
from shared.typed_json import convert

from coordinator.errors import UsageError


def absolute(path: Any) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def plain(value: Any) -> Any:
    """A field's value as JSON: paths as strings, the input size as a list."""
    return str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value


def typed(hint: Any, value: Any, where: str) -> Any:
    """`value` as the field's type. Beyond JSON's types (the protocol's own check), a config
    file gives paths as strings, the input size as "HxW" and lists as comma-separated strings."""
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and value is not None:  # Optional[X]
        return typed(inner[0], value, where)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if typing.get_origin(hint) is tuple:  # the input size
        if isinstance(value, str):
            return parse_size(value)
        value = convert(List[int], value, where)
        if len(value) == 2:
            return tuple(value)
    if typing.get_origin(hint) is list and isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if hint == List[int] and isinstance(value, list):  # "1,4,8"
        value = [int(v) if isinstance(v, str) and v.isdigit() else v for v in value]
    try:
        return convert(hint, value, where)
    except (ProtocolError, TypeError):
        expected = {list: "a list of names (or one comma-separated string)", tuple: "HxW or [H, W]"}.get(
            typing.get_origin(hint), getattr(hint, "__name__", str(hint)))
        raise UsageError(f"{where}: expected {expected}, got {value!r}") from None


def parse_size(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """`480x640` (height x width)."""
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--input-size must look like 480x640 (height x width), got {text!r}") from None
    if h < 16 or w < 16:
        raise UsageError(f"--input-size {text}: both sides must be at least 16")
    return h, w
