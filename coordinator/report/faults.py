"""The fault-injection test hooks (shared/faults.py) a run was made under. They break rows on
purpose, so the report records them: `setup.faults`, each row's `fault`, and its first line."""
import os
from typing import Dict, Mapping, Optional

HOOKS = ("E2E_FAULT", "E2E_KILL_AT")  # engine=fault,...: a runner misbehaves; phase,...: a process SIGKILLs itself


def hooks(environ: Mapping[str, str] = os.environ) -> Optional[Dict[str, str]]:
    """The hooks set, as given ({"E2E_FAULT": "ort=abort"}); None when none is."""
    found = {name: environ[name] for name in HOOKS if environ.get(name, "").strip()}
    return found or None


def injected(engine_id: str, environ: Mapping[str, str] = os.environ) -> str:
    """The fault E2E_FAULT asks of this engine's runner ("ort=abort,tvm=hang" -> "abort" for ort)."""
    wanted = dict(item.partition("=")[::2] for item in environ.get("E2E_FAULT", "").split(",") if "=" in item)
    return wanted.get(engine_id, "")


def headline(setup_hooks: Optional[Dict[str, str]], row_faults: Dict[str, str]) -> str:
    """The report's first line when a fault was injected ("" when none): the run's hooks, and
    the rows' faults that they do not name (rows kept by --resume from a run under a hook)."""
    named = dict(setup_hooks or {})
    extra = {e: f for e, f in row_faults.items() if e not in _engines(named.get("E2E_FAULT", ""))}
    if extra:
        named["E2E_FAULT"] = ",".join(filter(None, [named.get("E2E_FAULT", ""), *(f"{e}={f}" for e, f in extra.items())]))
    if not named:
        return ""
    return "FAULT INJECTED (test hooks, shared/faults.py): " + " ".join(f"{k}={v}" for k, v in named.items())


def _engines(fault_hook: str) -> set:
    return {item.partition("=")[0] for item in fault_hook.split(",") if "=" in item}
