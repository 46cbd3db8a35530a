"""The bench configuration, resolved in one place (`resolve`): CLI flag > config file > default (machine facts)."""
import os
import typing
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from shared.errors import ProtocolError, one_line
from shared.records import convert
from shared.scenarios import REGISTRY as SCENARIOS
from shared.spec import PRECISIONS

from coordinator.machine import host
from coordinator.model.exporters import CHOICES as EXPORTERS
from coordinator.errors import UsageError
from coordinator.launchers.registry import AUTO, names as launcher_names
from coordinator.model.zoo import model_name
from coordinator.machine.precisions import AUTO as AUTO_PRECISION

SCHEDULES = ("interleaved", "sequential")
# Row outcomes `--fail-on` can turn into a non-zero exit status (see README, "Exit status").
FAIL_ON = ("failed", "timeout", "unsupported", "skipped", "parity", "noisy", "imprecise")  # exit_status.OUTCOMES


def default_cache() -> Path:
    import os

    return Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "e2e")


def option(help: str, default: Any = MISSING, factory: Any = MISSING, flags: Tuple[str, ...] = (),
           shown: str = "") -> Any:
    """A BenchConfig field and its command-line option, declared once: the CLI is made from
    these (`cli_bench.py`); `flags` when the option is not spelled `--<field-name>`, `shown` for
    a default that the CLI cannot print as it is."""
    meta = {"help": help, "flags": flags, "shown": shown}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class BenchConfig:
    """What `e2e bench` does. Command line > config file (`--config`) > these defaults, resolved
    in `resolve`."""

    model: str = option("Zoo name, path/to/model.onnx, or package.module:factory.", flags=("--model", "-m"))
    engines: str = option("'all' or a comma list (see `e2e engines`).", "all", flags=("--engines", "-e"))
    device: Optional[str] = option("cpu, cuda or cuda:N.", None, shown="cuda:0 if an NVIDIA GPU is visible, else cpu")
    precisions: List[str] = option("Comma list of fp32, fp16, bf16, int8: one row per engine and precision; auto: "
                                   "fp32 and each precision this device accelerates (bf16 with AVX512-BF16 or AMX, "
                                   "int8 with VNNI or AMX, fp16/bf16 on a GPU) on every engine that offers it.",
                                   factory=lambda: ["fp32"], flags=("--precision",))
    scenarios: List[str] = option("Comma list: " + ", ".join(f"{s.name} ({s.summary})" for s in SCENARIOS.values())
                                  + "; one row per engine, precision and point.", factory=lambda: ["latency"],
                                  flags=("--scenario",))
    batch: List[int] = option("Comma list of batch sizes (models with a batch axis): a row each.", factory=lambda: [1])
    concurrency: List[str] = option("Throughput: requests in flight, a comma list of counts, 'engine' (the engine's "
                                    "own choice) or 'auto' (double until samples/s stop rising).",
                                    factory=lambda: ["engine"])
    tune: bool = option("Each engine at its best too: after its equal-threads row, search the options its manifest "
                        "declares (a short loop each) and run the best as a second row marked tuned.", False)
    tune_time: float = option("--tune: seconds of timed calls per candidate.", 5.0)
    warmup: int = option("Untimed calls at most (every test input runs once for parity).", 5)
    warmup_time: float = option("Seconds of untimed calls at most.", 10.0)
    iterations: Optional[int] = option("A fixed count of timed calls.", None,
                                       shown="until the median is known to --target-ci")
    min_time: Optional[float] = option("Seconds of timed calls at least.", None, shown="1, or 0 with --iterations")
    max_time: float = option("Sequential: seconds of timed calls per row at most: the row's budget when the median is not "
                             "known to --target-ci sooner.", 60.0)
    target_ci: float = option("Stop once the 95% confidence interval of the median is within +- this fraction "
                              "of it.", 0.01)
    repeats: int = option("Sequential schedule: timed loops per row; the report gives the spread of their medians.", 1)
    schedule: str = option("interleaved: every row loaded at once and timed in alternating rounds, compared by "
                           "ratios paired within rounds (holds on a drifting machine); sequential: one row after "
                           "another, each in its own window.", "interleaved")
    slice_time: float = option("Interleaved: seconds of timed calls per row per round (one call at least).", 0.5)
    rounds_budget: float = option("Interleaved: seconds of timed calls per loaded row at most; the rounds stop "
                                  "when the rows have spent it together, if --target-ratio was not reached first.",
                                  30.0)
    target_ratio: float = option("Interleaved: stop once every row's ratio to the reference and to the fastest "
                                 "row is known to +- this fraction (95% interval over rounds).", 0.02)
    processes: int = option("Interleaved: runner processes each row is timed in, side by side in the rounds; its "
                            "figure is over all of them and its interval includes the gap between them (the "
                            "reference runs in 2 at least).", 1)
    threads: Optional[int] = option("Threads for every engine.", None, shown="physical cores")
    out: Optional[Path] = option("Run directory.", None, shown="runs/<time>-<model> in the current directory")
    weights: str = option("'pretrained', 'random' (seeded) or a checkpoint path.", "pretrained")
    seed: int = option("Seed for random weights.", 0)
    images: Optional[Path] = option("Folder of test images.", None, shown="three shipped photographs")
    inputs: Optional[str] = option("A model factory's example inputs, the test inputs: package.module:function "
                                   "(returning a tensor, a tuple or a dict of tensors) or a .npz / .pt file of "
                                   "named tensors.", None, shown="one RGB image of --input-size")
    dataset: Optional[Path] = option("COCO annotations.json (detection) or a folder of class folders "
                                     "(classification): task accuracy per engine.", None)
    calibration: Optional[Path] = option("Folder of images int8 quantization calibrates on.", None,
                                         shown="the test inputs")
    limit: Optional[int] = option("Use the first N images of --dataset.", None)
    price_per_hour: Optional[float] = option("What this machine costs per hour: the verdict gives each throughput "
                                             "row's cost per 1,000 inferences.", None)
    accuracy_budget: Optional[float] = option("With --dataset: a row whose outputs fail parity may still be the "
                                              "verdict when its task metric drops by at most this (e.g. 0.005 mAP).",
                                              None)
    input_size: Optional[Tuple[int, int]] = option("HxW of the test inputs, e.g. 480x640.", None,
                                                   shown="per model")
    opset: int = option("ONNX opset of the export (an engine that loads only older ones gets its own).", 17)
    exporter: str = option("auto: the TorchScript exporter, then it with the attention fast path off, then the "
                           "dynamo exporter, the first that works; torchscript or dynamo: that one only (its own "
                           "cached file).", "auto")
    launcher: str = option("auto (Docker when the image is built, else venv), or a launcher's name.", "auto")
    timeout: float = option("Seconds before an engine run is killed.", 1800.0)
    cv_threshold: float = option("Flag rows whose robust latency spread exceeds this as noisy.", 0.05)
    memory_limit: Optional[int] = option("MB per engine run: the container's limit, a virtualenv runner's "
                                         "address-space limit.", None, shown="80% of RAM in a container, none in a venv")
    engine_options: List[str] = option("ENGINE.KEY=VALUE, repeatable: a runner's own option (e.g. "
                                       "ort.graph_optimization_level=basic, tvm.trials=650).", factory=list,
                                       flags=("--engine-option", "-o"))
    cache_dir: Path = option("Cache for exports and environments.", factory=default_cache,
                             shown="$E2E_CACHE_DIR or ~/.cache/e2e")
    explain: bool = option("Localise the first divergent node of every row that fails parity (as `e2e explain` "
                           "does): its engine and ONNX Runtime run again with intermediate tensors exposed.", False)
    fail_on: List[str] = option("Comma list of row outcomes that make the exit status 4: failed, timeout, "
                                "unsupported, skipped, parity, noisy, imprecise.", factory=list)
    hosts: Optional[str] = option("Run the rows on a Ray cluster's machines (`pip install 'e2e[fleet]'`): 'all-kinds' "
                                  "(a column of rows per machine kind) or a comma list of kinds; a kind is a node's "
                                  "e2e-kind:NAME resource.", None, shown="this machine only")
    ray_address: Optional[str] = option("--hosts: the Ray cluster's address (host:port, or ray://host:port for Ray "
                                        "Client).", None, shown="$RAY_ADDRESS, else the cluster this machine is a node of")

    def sequential_because(self) -> Optional[str]:
        """Why this bench's rows run one after the other rather than interleaved (None: interleaved)."""
        if self.schedule == "sequential":
            return "--schedule sequential"
        if self.tune:
            return "--tune searches each row's options one loop at a time"
        if "auto" in self.concurrency and any(s in SCENARIOS and SCENARIOS[s].concurrent for s in self.scenarios):
            return "--concurrency auto grows each row's point from the last one's figure"
        return None

    def __post_init__(self) -> None:
        _check(self)

    def resolved(self) -> "BenchConfig":
        """The machine's facts where the user gave none: the device (cuda:0 when an NVIDIA GPU is
        visible), the threads (physical cores) and the run directory (stamped now). Apart from
        construction, which probes nothing: a config made to check a value asks no GPU."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return replace(self, device=self.device or ("cuda:0" if host.nvidia_gpus() else "cpu"),
                       threads=self.threads or host.physical_cores(),
                       out=self.out or _absolute(Path("runs") / f"{stamp}-{model_name(self.model)}"))

    def options_for(self, engine: str) -> Dict[str, Any]:
        """`--engine-option ENGINE.KEY=VALUE` for this engine; values read as YAML scalars."""
        import yaml

        options = {}
        for item in self.engine_options:
            target, eq, value = item.partition("=")
            name, dot, key = target.partition(".")
            if not (eq and dot and name and key):
                raise UsageError(f"--engine-option {item!r}: expected ENGINE.KEY=VALUE, e.g. tvm.opt_level=2")
            if name == engine:
                try:
                    options[key] = yaml.safe_load(value)
                except yaml.YAMLError:
                    options[key] = value
        return options

    def to_dict(self) -> Dict[str, Any]:
        """JSON values, for report.json; `from_dict` reads them back (`--resume`)."""
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v for k, v in plain.items()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "config") -> "BenchConfig":
        """Checked: an unknown key or a value of the wrong type is one clear error."""
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected a mapping of option names to values")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls)]
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(names)}")
        if "model" not in data:
            raise UsageError(f"{where}: no model given (--model)")
        return cls(**{k: _typed(hints[k], v, f"{where}: {k}") for k, v in data.items()})


def _check(cfg: "BenchConfig") -> None:
    """Every value checked (one line per mistake) and normalised; nothing probed."""
    bad = [p for p in cfg.precisions if p not in PRECISIONS and p != AUTO_PRECISION]
    if bad or not cfg.precisions:
        raise UsageError(f"unknown precision {', '.join(bad) or '(none)'}; valid: {', '.join(PRECISIONS)}, "
                         f"{AUTO_PRECISION} (fp32 and what this device accelerates, on each engine that offers it)")
    if cfg.device == "cuda":
        cfg.device = "cuda:0"
    if cfg.device not in (None, "cpu") and not (cfg.device.startswith("cuda:") and cfg.device[5:].isdigit()):
        raise UsageError(f"unknown device {cfg.device!r}; valid: cpu, cuda, cuda:N")
    for name in ("iterations", "threads", "repeats"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise UsageError(f"--{name} must be at least 1")
    if cfg.min_time is None:
        cfg.min_time = 0.0 if cfg.iterations else 1.0
    if cfg.tune_time <= 0:
        raise UsageError("--tune-time must be > 0 seconds")
    if cfg.schedule not in SCHEDULES:
        raise UsageError(f"unknown schedule {cfg.schedule!r}; valid: {', '.join(SCHEDULES)}")
    if cfg.processes < 1:
        raise UsageError("--processes must be 1 or more")
    if cfg.slice_time <= 0 or cfg.rounds_budget <= 0 or not 0 < cfg.target_ratio < 1:
        raise UsageError("--slice-time and --rounds-budget must be > 0 seconds and --target-ratio in (0, 1)")
    if not 0 < cfg.target_ci < 1 or cfg.max_time <= 0 or cfg.warmup_time < 0:
        raise UsageError("--target-ci must be between 0 and 1, --max-time > 0, --warmup-time >= 0")
    from coordinator.run.points import check

    check(cfg.scenarios, cfg.batch, cfg.concurrency)
    bad = sorted(set(cfg.fail_on) - set(FAIL_ON))
    if bad:
        raise UsageError(f"--fail-on: unknown outcome {', '.join(bad)}; valid: {', '.join(FAIL_ON)}")
    _absolute_paths(cfg)
    if cfg.images is not None and cfg.dataset is not None:
        raise UsageError("--images and --dataset both name the test images: give one")
    if cfg.warmup < 0 or cfg.min_time < 0 or cfg.timeout <= 0:
        raise UsageError("--warmup and --min-time must be >= 0, --timeout > 0")
    if cfg.memory_limit is not None and cfg.memory_limit < 64:
        raise UsageError("--memory-limit is in MB and must be at least 64")
    cfg.options_for("")  # the format is checked here, the keys by each runner
    if cfg.hosts is not None and not [k for k in cfg.hosts.split(",") if k.strip()]:
        raise UsageError("--hosts: expected all-kinds or a comma list of machine kinds")
    if cfg.ray_address is not None and cfg.hosts is None:
        raise UsageError("--ray-address names the cluster of --hosts: give --hosts too")
    if cfg.exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter {cfg.exporter!r}; valid: {', '.join(EXPORTERS)}")
    if cfg.launcher not in (AUTO, *launcher_names()):
        raise UsageError(f"unknown launcher {cfg.launcher!r}; valid: {', '.join((AUTO, *launcher_names()))}")


def _absolute_paths(cfg: "BenchConfig") -> None:
    """Every path made absolute once, here: runners start in their own working directory,
    and the report must name files that exist wherever it is read from."""
    for name in ("out", "images", "dataset", "calibration", "cache_dir"):
        value = getattr(cfg, name)
        if value is not None:
            setattr(cfg, name, _absolute(value))
    if cfg.model.endswith(".onnx"):
        cfg.model = str(_absolute(cfg.model))
    if cfg.weights not in ("pretrained", "random"):
        cfg.weights = str(_absolute(cfg.weights))
    if cfg.inputs and cfg.inputs.endswith((".npz", ".pt", ".pth")):
        cfg.inputs = str(_absolute(cfg.inputs))


def resolve(given: Dict[str, Any], config_file: Optional[Path] = None) -> BenchConfig:
    """The one place where precedence is decided: the options given on the command line
    (`given`, by field name), over the config file's, over the defaults."""
    values = read_config_file(config_file) if config_file is not None else {}
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    values.update({k: str(v) if isinstance(v, Path) else v for k, v in given.items()})
    return BenchConfig.from_dict(values, where=f"--config {config_file}" if config_file else "options").resolved()


def read_config_file(path: Path) -> Dict[str, Any]:
    """A YAML (or JSON) mapping of option names (as the fields, - or _) to values."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"--config {path}: cannot read it: {one_line(e, 200)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values")
    return data


def _absolute(path: Any) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` as the field's type. Beyond JSON's types (the protocol's own check), a config
    file gives paths as strings, the input size as "HxW" and lists as comma-separated strings."""
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union and value is not None:  # Optional[X]
        return _typed(inner[0], value, where)
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
