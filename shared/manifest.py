"""What a runner's `manifest.yaml` declares about where it runs: its devices and precisions.

The manifest sits beside `runner.py` in both launchers (the Docker images copy the whole runner
folder), so the runner base class checks a spec against the same declaration the coordinator
skips rows by (coordinator/engines.py), instead of each runner writing it again. `shared/` has
no YAML parser (pure Python + numpy), so only the form every manifest uses is read here: a
one-line flow list, `devices: [cpu, cuda]`; any other form of these keys is an error that
says so, and tests/unit/test_runner_base.py checks this reading against PyYAML's for every
manifest.
"""
import os
import re
from typing import Dict, List, Optional

from .errors import EngineUnavailable, ProtocolError

NAME = "manifest.yaml"
KEYS = ("devices", "precisions")
_LINE = re.compile(r"^(\w+):(.*)$")
_FLOW = re.compile(r"^\[([^\]]*)\]\s*(#.*)?$")


def declared(runner_file: str) -> Optional[Dict[str, List[str]]]:
    """The devices and precisions the manifest beside `runner_file` declares, and its `note`;
    None where there is no manifest (a runner defined in a test, not in a runner folder)."""
    path = os.path.join(os.path.dirname(os.path.abspath(runner_file)), NAME)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    found = {}  # type: Dict[str, List[str]]
    for line in lines:
        match = _LINE.match(line)
        if not match or match.group(1) not in KEYS + ("note",):
            continue
        key, value = match.group(1), match.group(2).strip()
        if key == "note":
            found[key] = [value]
            continue
        flow = _FLOW.match(value)
        if not flow:
            raise ProtocolError("{}: write {} as a one-line list, e.g. {}: [cpu] (the runner reads it without "
                                "a YAML parser), got {!r}".format(path, key, key, value))
        found[key] = [v.strip().strip("'\"") for v in flow.group(1).split(",") if v.strip()]
    missing = [k for k in KEYS if k not in found]
    if missing:
        raise ProtocolError("{} declares no {}".format(path, " and no ".join(missing)))
    return found


def check_declared(runner_module_file: Optional[str], engine: str, device: str, precision: str) -> None:
    """The spec's device kind and precision against the manifest beside the runner (what the
    coordinator skips rows by): a runner does not check them again. A runner class defined
    outside a runner folder (in a test) has no manifest to check (`runner_module_file` None)."""
    found = declared(runner_module_file) if runner_module_file else None
    if found is None:
        return
    kind = "cpu" if device == "cpu" else "cuda"
    note = "; ".join(found.get("note", []))
    if kind not in found["devices"]:
        raise EngineUnavailable("the {} runner runs on {}, not {} ({}); rerun with --device {}".format(
            engine, ", ".join(found["devices"]), kind, note or "its manifest.yaml",
            found["devices"][0] if found["devices"] else "?"))
    if precision not in found["precisions"]:
        raise EngineUnavailable("the {} runner offers {}, not {} ({}); rerun with --precision {}".format(
            engine, ", ".join(found["precisions"]), precision, note or "its manifest.yaml",
            found["precisions"][0] if found["precisions"] else "?"))
