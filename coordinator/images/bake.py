"""Read `docker-bake.hcl` the way `docker buildx bake` does, for builds without buildx.

python-hcl2 parses the file but evaluates nothing, so this module does the part of bake's
semantics the file uses: variables (defaults, overridden by environment variables of the same
name, as bake does), `${VAR}` interpolation, `inherits`, groups, and `contexts` entries of the
form `target:<name>`, which make one target depend on another.
"""
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from shared.errors import one_line

from coordinator.errors import UsageError

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Target:
    name: str
    context: str = "."
    dockerfile: str = "Dockerfile"
    args: Dict[str, str] = field(default_factory=dict)
    tags: List[str] = field(default_factory=list)
    labels: Dict[str, str] = field(default_factory=dict)
    depends: List[str] = field(default_factory=list)  # targets named in `contexts = {x = "target:y"}`


@dataclass
class BakeFile:
    path: Path
    variables: Dict[str, str]
    targets: Dict[str, Target]
    groups: Dict[str, List[str]]

    def expand(self, names: List[str]) -> List[Target]:
        """The targets to build for these target or group names, dependencies first."""
        order: List[str] = []

        def visit(name: str, chain: tuple) -> None:
            if name in chain:
                raise UsageError(f"{self.path}: dependency cycle {' -> '.join(chain + (name,))}")
            if name in self.groups:
                for member in self.groups[name]:
                    visit(member, chain)
                return
            if name not in self.targets:
                raise UsageError(f"no image target {name!r} in {self.path}; valid: "
                                 f"{', '.join(t for t in self.targets if not t.startswith('_'))}")
            for dep in self.targets[name].depends:
                visit(dep, chain + (name,))
            if name not in order:
                order.append(name)

        for name in names or ["default"]:
            visit(name, ())
        return [self.targets[n] for n in order]


def load(path: Path, environ: Optional[Mapping[str, str]] = None) -> BakeFile:
    import hcl2

    environ = os.environ if environ is None else environ
    try:
        with open(path, encoding="utf-8") as f:
            raw = hcl2.load(f, serialization_options=hcl2.SerializationOptions(strip_string_quotes=True))
    except (OSError, Exception) as e:
        raise UsageError(f"cannot read {path}: {one_line(e, 200)}") from None
    variables = {}
    for block in raw.get("variable", []):
        for name, body in _blocks(block):
            variables[name] = environ.get(name, str(body.get("default", "")))
    bodies = {name: body for block in raw.get("target", []) for name, body in _blocks(block)}
    groups = {name: [str(t) for t in body.get("targets", [])]
              for block in raw.get("group", []) for name, body in _blocks(block)}

    def merged(name: str, seen: tuple = ()) -> Dict[str, Any]:
        if name not in bodies:
            raise UsageError(f"{path}: target {seen[-1] if seen else name!r} inherits unknown {name!r}")
        out: Dict[str, Any] = {}
        for parent in bodies[name].get("inherits", []):
            if parent in seen:
                raise UsageError(f"{path}: inheritance cycle at {parent!r}")
            _merge(out, merged(parent, seen + (name,)))
        _merge(out, bodies[name])
        return out

    targets = {}
    for name in bodies:
        body = _interpolate(merged(name), variables, path)
        contexts = body.get("contexts", {})
        targets[name] = Target(
            name=name, context=body.get("context", "."), dockerfile=body.get("dockerfile", "Dockerfile"),
            args={k: str(v) for k, v in body.get("args", {}).items()}, tags=list(body.get("tags", [])),
            labels=dict(body.get("labels", {})),
            depends=[v.split(":", 1)[1] for v in contexts.values() if str(v).startswith("target:")],
        )
    return BakeFile(path, variables, targets, groups)


def _blocks(block: Dict[str, Any]) -> List[tuple]:
    return [(k, {bk: bv for bk, bv in v.items() if not bk.startswith("__")}) for k, v in block.items()]


def _merge(into: Dict[str, Any], body: Dict[str, Any]) -> None:
    """Bake's inheritance: maps merge key by key, other attributes are replaced."""
    for key, value in body.items():
        if key == "inherits":
            continue
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = {**into[key], **value}
        else:
            into[key] = value


def _interpolate(value: Any, variables: Dict[str, str], path: Path) -> Any:
    if isinstance(value, str):
        def sub(m: "re.Match[str]") -> str:
            if m.group(1) not in variables:
                raise UsageError(f"{path}: unknown variable ${{{m.group(1)}}}")
            return variables[m.group(1)]
        return INTERPOLATION.sub(sub, value)
    if isinstance(value, list):
        return [_interpolate(v, variables, path) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, variables, path) for k, v in value.items()}
    return value
