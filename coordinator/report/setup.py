"""The report's `setup` section: how the bench ran, its settings kept once, typed, in `config`.

report.json writes `config` nested by section (BenchConfig.to_dict). An older e2e wrote it flat,
by option name: such a report reads into the same typed config (BenchConfig.from_dict takes
both), and its flat `config` is written back as it was read (the sections' LEGACY rule) while the
typed config still says the same."""
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Optional, Tuple

from coordinator.config.bench import BenchConfig, nested
from coordinator.report import faults
from coordinator.report.sections import Section

# The settings an older e2e also copied into setup beside `config` (or, before config existed,
# instead of it): their keys there, by option name.
COPIES = {**{name: name for name in ("device", "precisions", "warmup", "iterations", "target_ci", "repeats",
                                     "threads", "weights", "seed", "opset", "launcher", "cache_dir", "cv_threshold")},
          "warmup_time": "warmup_time_s", "min_time": "min_time_s", "max_time": "max_time_s", "timeout": "timeout_s"}


@dataclass(kw_only=True)
class Setup(Section):
    """How the bench ran: its settings (`config`, the one source of them) and what it measured."""

    LEGACY: ClassVar[Tuple[str, ...]] = tuple(COPIES.values())
    e2e_commit: str = ""  # the e2e checkout's commit, when e2e ran from one
    config: Optional[BenchConfig] = None  # what --resume reruns with; None in a report from before it was kept
    copy_policy: str
    timed_region: str
    phase_seconds: Optional[Dict[str, float]] = None  # export, inputs, environments, reference, total: at the end
    # the fault-injection test hooks set when the run's setup was made ({"E2E_FAULT": "ort=abort"}),
    # read from the environment then; None when none was (and in a report read back without the key)
    faults: Optional[Dict[str, str]] = field(default_factory=faults.hooks)

    def __post_init__(self) -> None:
        saved = self.legacy.get("config")  # report.json's, as read (`lift`)
        if saved is not None and self.config is None:
            self.config = BenchConfig.from_dict(saved, where="report.json setup.config")
            if nested(saved):  # as this e2e writes it: from the typed config
                del self.legacy["config"]

    @classmethod
    def lift(cls, data: Any) -> Any:
        # A report read back is as it was written: no hooks of this process's environment. Its
        # `config` travels under `legacy` to __post_init__, which types it: JSON's reader knows no paths.
        if not isinstance(data, dict):
            return data
        lifted = super().lift({"faults": None, **{k: v for k, v in data.items() if k != "config"}})
        if data.get("config") is not None:
            lifted["legacy"] = {**lifted["legacy"], "config": data["config"]}
        return lifted

    def to_dict(self) -> Dict[str, Any]:
        written = super().to_dict()  # an older e2e's flat config, kept in legacy, is written as it was...
        if self.config is not None and not self._as_read():
            written["config"] = self.config.to_dict()  # ...unless the typed config was changed since
        return written

    def _as_read(self) -> bool:
        saved = self.legacy.get("config")
        return saved is not None and BenchConfig.from_dict(saved) == self.config

    def settings(self) -> Dict[str, Any]:
        """Every bench setting by its option name: `config`, completed by an older report's copies."""
        merged = self.config.options() if self.config is not None else {}
        for name, key in COPIES.items():
            if name not in merged and key in self.legacy:
                merged[name] = self.legacy[key]
        return merged

    def setting(self, name: str, default: Any = None) -> Any:
        """One bench setting by its option name (`threads`, `min_time`), from any report."""
        return self.settings().get(name, default)
