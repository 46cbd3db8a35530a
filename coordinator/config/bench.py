"""The bench configuration, resolved in one place (`resolve`): CLI flag > config file > default
(machine facts). Its options live in sections (sections.py); a config file or report.json gives
them flat, by option name, or nested by section."""
import typing
from dataclasses import Field, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional

from shared.errors import one_line
from shared.scenarios import REGISTRY as SCENARIOS

from coordinator.config.sections import Data, Execution, Fleet, Model, Points, Reporting, Rounds, Timing, Tuning
from coordinator.config.values import absolute, plain, typed
from coordinator.errors import UsageError
from coordinator.machine import host
from coordinator.model.zoo import model_name


@dataclass
class BenchConfig:
    """What `e2e bench` does. Command line > config file (`--config`) > these defaults, resolved
    in `resolve`; made from option names with `of` (code) or `from_dict` (a file's values)."""

    model: Model
    execution: Execution = field(default_factory=Execution)
    points: Points = field(default_factory=Points)
    tuning: Tuning = field(default_factory=Tuning)
    timing: Timing = field(default_factory=Timing)
    rounds: Rounds = field(default_factory=Rounds)
    data: Data = field(default_factory=Data)
    reporting: Reporting = field(default_factory=Reporting)
    fleet: Fleet = field(default_factory=Fleet)

    def sequential_because(self) -> Optional[str]:
        """Why this bench's rows run one after the other rather than interleaved (None: interleaved)."""
        if self.rounds.schedule == "sequential":
            return "--schedule sequential"
        if self.tuning.tune:
            return "--tune searches each row's options one loop at a time"
        points = self.points
        if "auto" in points.concurrency and any(s in SCENARIOS and SCENARIOS[s].concurrent for s in points.scenarios):
            return "--concurrency auto grows each row's point from the last one's figure"
        return None

    def resolved(self) -> "BenchConfig":
        """The machine's facts where the user gave none: the device (cuda:0 when an NVIDIA GPU is
        visible), the threads (physical cores) and the run directory (stamped now). Apart from
        construction, which probes nothing: a config made to check a value asks no GPU."""
        stamp, run = datetime.now().strftime("%Y%m%d-%H%M%S"), self.execution
        execution = replace(run, device=run.device or ("cuda:0" if host.nvidia_gpus() else "cpu"),
                            threads=run.threads or host.physical_cores())
        return replace(self, execution=execution).at(
            self.reporting.out or absolute(Path("runs") / f"{stamp}-{model_name(self.model.name)}"))

    def at(self, out: Path) -> "BenchConfig":
        """This config with its run directory `out` (a run read back: --resume, e2e explain)."""
        return replace(self, reporting=replace(self.reporting, out=out))

    @classmethod
    def of(cls, **options: Any) -> "BenchConfig":
        """Made from option names (`of(model="resnet18", threads=4)`), each value of its field's type."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UsageError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
        if "model" not in options:
            raise UsageError("no model given (--model)")
        given: Dict[str, Dict[str, Any]] = {section: {} for section in SECTIONS}
        for name, value in options.items():
            given[OPTIONS[name].section][OPTIONS[name].field.name] = value
        return cls(**{section: SECTIONS[section](**values) for section, values in given.items()})

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> "BenchConfig":
        """Checked: an unknown key or a value of the wrong type is one clear error. Flat (option
        names: a config file, an older report.json) or nested by section (`to_dict`)."""
        values = flat(data, where)
        if "model" not in values:
            raise UsageError(f"{where}: no model given (--model)")
        return cls.of(**{k: typed(OPTIONS[k].hint, v, f"{where}: {k}") for k, v in values.items()})

    def to_dict(self) -> Dict[str, Any]:
        """JSON values nested by section, for report.json; `from_dict` reads them back (`--resume`)."""
        return {s.name: {f.name: plain(getattr(getattr(self, s.name), f.name)) for f in fields(SECTIONS[s.name])}
                for s in fields(self)}

    def options(self) -> Dict[str, Any]:
        """JSON values by option name (flat, as the command line names them): what a report shows."""
        return {name: plain(getattr(getattr(self, o.section), o.field.name)) for name, o in OPTIONS.items()}


class Option(NamedTuple):
    """One option: its section of BenchConfig, its field there, and the field's type."""

    section: str
    field: Field
    hint: Any


SECTIONS: Dict[str, Any] = {s.name: s.type for s in fields(BenchConfig)}
OPTIONS: Dict[str, Option] = {f.metadata["name"] or f.name: Option(name, f, typing.get_type_hints(cls)[f.name])
                              for name, cls in SECTIONS.items() for f in fields(cls)}  # in --help's order


def flat(data: Any, where: str) -> Dict[str, Any]:
    """A mapping of option names (- or _) to values, or of sections to such mappings of their
    fields, as one mapping of option names."""
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping of option names (or sections) to values")
    values: Dict[str, Any] = {}
    unknown = []
    for key, value in data.items():
        key = str(key).replace("-", "_")
        if key in SECTIONS and isinstance(value, dict):  # `model: {name: ...}` a section, `model: x` the option
            names = {o.field.name: name for name, o in OPTIONS.items() if o.section == key}
            for sub, v in value.items():
                sub = str(sub).replace("-", "_")
                if sub in names:
                    values[names[sub]] = v
                else:
                    unknown.append(f"{key}.{sub}")
        elif key in OPTIONS:
            values[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)} "
                         f"(or nested by section: {', '.join(SECTIONS)})")
    return values


def nested(data: Any) -> bool:
    """Whether a saved config is nested by section (as `to_dict` writes it), not flat (an older e2e's)."""
    return isinstance(data, dict) and all(k in SECTIONS and isinstance(v, dict) for k, v in data.items())


def resolve(given: Dict[str, Any], config_file: Optional[Path] = None) -> BenchConfig:
    """The one place where precedence is decided: the options given on the command line
    (`given`, by option name), over the config file's, over the defaults."""
    where = f"--config {config_file}" if config_file else "options"
    values = flat(read_config_file(config_file), where) if config_file is not None else {}
    values.update({k: str(v) if isinstance(v, Path) else v for k, v in given.items()})
    return BenchConfig.from_dict(values, where=where).resolved()


def read_config_file(path: Path) -> Dict[str, Any]:
    """A YAML (or JSON) mapping of option names (as the fields, - or _) to values, flat or by section."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"--config {path}: cannot read it: {one_line(e, 200)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values")
    return data
