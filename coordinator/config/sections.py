"""BenchConfig's sections, one small dataclass per concern. Each field is a command-line option
declared once (`option`): the CLI and docs/options.md are made from these; each section checks
and normalises its own values when made, and probes nothing."""
import os
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from shared.scenarios import REGISTRY as SCENARIOS
from shared.spec import PRECISIONS

from coordinator.config.values import absolute
from coordinator.errors import UsageError
from coordinator.launchers.registry import AUTO, names as launcher_names
from coordinator.machine.precisions import AUTO as AUTO_PRECISION
from coordinator.model.exporters import CHOICES as EXPORTERS

SCHEDULES = ("interleaved", "sequential")
# Row outcomes `--fail-on` can turn into a non-zero exit status (see README, "Exit status").
FAIL_ON = ("failed", "timeout", "unsupported", "skipped", "parity", "noisy", "imprecise")  # exit_status.OUTCOMES


def default_cache() -> Path:
    return Path(os.environ.get("E2E_CACHE_DIR") or Path.home() / ".cache" / "e2e")


def option(help: str, default: Any = MISSING, factory: Any = MISSING, flags: Tuple[str, ...] = (),
           shown: str = "", name: str = "") -> Any:
    """A section's field and its command-line option, declared once: `flags` when the option is
    not spelled `--<field-name>`, `shown` for a default that the CLI cannot print as it is, `name`
    when the option's name (a config file's flat key, the CLI parameter) is not the field's."""
    meta = {"help": help, "flags": flags, "shown": shown, "name": name}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Model:
    """What is benchmarked: the model, its weights and its ONNX export."""

    name: str = option("Zoo name, path/to/model.onnx, or package.module:factory.", flags=("--model", "-m"),
                       name="model")
    weights: str = option("'pretrained', 'random' (seeded) or a checkpoint path.", "pretrained")
    seed: int = option("Seed for random weights.", 0)
    opset: int = option("ONNX opset of the export (an engine that loads only older ones gets its own).", 17)
    exporter: str = option("auto: the TorchScript exporter, then it with the attention fast path off, then the "
                           "dynamo exporter, the first that works; torchscript or dynamo: that one only (its own "
                           "cached file).", "auto")

    def __post_init__(self) -> None:
        if self.name.endswith(".onnx"):  # paths absolute once: runners start in their own directory
            self.name = str(absolute(self.name))
        if self.weights not in ("pretrained", "random"):
            self.weights = str(absolute(self.weights))
        if self.exporter not in EXPORTERS:
            raise UsageError(f"unknown exporter {self.exporter!r}; valid: {', '.join(EXPORTERS)}")


@dataclass
class Execution:
    """Where and how each engine runs: the engines, the device, threads, launcher and limits."""

    engines: str = option("'all' or a comma list (see `e2e engines`).", "all", flags=("--engines", "-e"))
    device: Optional[str] = option("cpu, cuda or cuda:N.", None, shown="cuda:0 if an NVIDIA GPU is visible, else cpu")
    threads: Optional[int] = option("Threads for every engine.", None, shown="physical cores")
    launcher: str = option("auto (Docker when the image is built, else venv), or a launcher's name.", "auto")
    timeout: float = option("Seconds before an engine run is killed.", 1800.0)
    memory_limit: Optional[int] = option("MB per engine run: the container's limit, a virtualenv runner's "
                                         "address-space limit.", None, shown="80% of RAM in a container, none in a venv")
    engine_options: List[str] = option("ENGINE.KEY=VALUE, repeatable: a runner's own option (e.g. "
                                       "ort.graph_optimization_level=basic, tvm.trials=650).", factory=list,
                                       flags=("--engine-option", "-o"))
    cache_dir: Path = option("Cache for exports and environments.", factory=default_cache,
                             shown="$E2E_CACHE_DIR or ~/.cache/e2e")

    def __post_init__(self) -> None:
        if self.device == "cuda":
            self.device = "cuda:0"
        if self.device not in (None, "cpu") and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise UsageError(f"unknown device {self.device!r}; valid: cpu, cuda, cuda:N")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be at least 1")
        if self.timeout <= 0:
            raise UsageError("--timeout must be > 0 seconds")
        if self.memory_limit is not None and self.memory_limit < 64:
            raise UsageError("--memory-limit is in MB and must be at least 64")
        self.options_for("")  # the format is checked here, the keys by each runner
        self.cache_dir = absolute(self.cache_dir)
        if self.launcher not in (AUTO, *launcher_names()):
            raise UsageError(f"unknown launcher {self.launcher!r}; valid: {', '.join((AUTO, *launcher_names()))}")

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


@dataclass
class Points:
    """The rows: one per engine, precision and point (scenario, batch, concurrency)."""

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

    def __post_init__(self) -> None:
        from coordinator.run.points import check

        bad = [p for p in self.precisions if p not in PRECISIONS and p != AUTO_PRECISION]
        if bad or not self.precisions:
            raise UsageError(f"unknown precision {', '.join(bad) or '(none)'}; valid: {', '.join(PRECISIONS)}, "
                             f"{AUTO_PRECISION} (fp32 and what this device accelerates, on each engine that offers it)")
        check(self.scenarios, self.batch, self.concurrency)


@dataclass
class Tuning:
    """--tune: each engine at its best too, beside its equal-threads row."""

    tune: bool = option("Each engine at its best too: after its equal-threads row, search the options its manifest "
                        "declares (a short loop each) and run the best as a second row marked tuned.", False)
    tune_time: float = option("--tune: seconds of timed calls per candidate.", 5.0)

    def __post_init__(self) -> None:
        if self.tune_time <= 0:
            raise UsageError("--tune-time must be > 0 seconds")


@dataclass
class Timing:
    """Each row's timed loop: warm-up, when it stops, and when its spread is noisy."""

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
    cv_threshold: float = option("Flag rows whose robust latency spread exceeds this as noisy.", 0.05)

    def __post_init__(self) -> None:
        for name in ("iterations", "repeats"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1")
        if self.min_time is None:
            self.min_time = 0.0 if self.iterations else 1.0
        if not 0 < self.target_ci < 1 or self.max_time <= 0 or self.warmup_time < 0:
            raise UsageError("--target-ci must be between 0 and 1, --max-time > 0, --warmup-time >= 0")
        if self.warmup < 0 or self.min_time < 0:
            raise UsageError("--warmup and --min-time must be >= 0")


@dataclass
class Rounds:
    """How the rows share the machine: interleaved rounds, or one row after another."""

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

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.processes < 1:
            raise UsageError("--processes must be 1 or more")
        if self.slice_time <= 0 or self.rounds_budget <= 0 or not 0 < self.target_ratio < 1:
            raise UsageError("--slice-time and --rounds-budget must be > 0 seconds and --target-ratio in (0, 1)")


@dataclass
class Data:
    """The test inputs, the labelled dataset that scores accuracy, and the calibration images."""

    images: Optional[Path] = option("Folder of test images.", None, shown="three shipped photographs")
    inputs: Optional[str] = option("A model factory's example inputs, the test inputs: package.module:function "
                                   "(returning a tensor, a tuple or a dict of tensors) or a .npz / .pt file of "
                                   "named tensors.", None, shown="one RGB image of --input-size")
    input_size: Optional[Tuple[int, int]] = option("HxW of the test inputs, e.g. 480x640.", None,
                                                   shown="per model")
    dataset: Optional[Path] = option("COCO annotations.json (detection) or a folder of class folders "
                                     "(classification): task accuracy per engine.", None)
    limit: Optional[int] = option("Use the first N images of --dataset.", None)
    calibration: Optional[Path] = option("Folder of images int8 quantization calibrates on.", None,
                                         shown="the test inputs")

    def __post_init__(self) -> None:
        for name in ("images", "dataset", "calibration"):  # absolute once: the report names them anywhere
            if getattr(self, name) is not None:
                setattr(self, name, absolute(getattr(self, name)))
        if self.inputs and self.inputs.endswith((".npz", ".pt", ".pth")):
            self.inputs = str(absolute(self.inputs))
        if self.images is not None and self.dataset is not None:
            raise UsageError("--images and --dataset both name the test images: give one")


@dataclass
class Reporting:
    """The run directory and what the report and the exit status make of the rows."""

    out: Optional[Path] = option("Run directory.", None, shown="runs/<time>-<model> in the current directory")
    price_per_hour: Optional[float] = option("What this machine costs per hour: the verdict gives each throughput "
                                             "row's cost per 1,000 inferences.", None)
    accuracy_budget: Optional[float] = option("With --dataset: a row whose outputs fail parity may still be the "
                                              "verdict when its task metric drops by at most this (e.g. 0.005 mAP).",
                                              None)
    explain: bool = option("Localise the first divergent node of every row that fails parity (as `e2e explain` "
                           "does): its engine and ONNX Runtime run again with intermediate tensors exposed.", False)
    fail_on: List[str] = option("Comma list of row outcomes that make the exit status 4: failed, timeout, "
                                "unsupported, skipped, parity, noisy, imprecise.", factory=list)

    def __post_init__(self) -> None:
        if self.out is not None:
            self.out = absolute(self.out)
        bad = sorted(set(self.fail_on) - set(FAIL_ON))
        if bad:
            raise UsageError(f"--fail-on: unknown outcome {', '.join(bad)}; valid: {', '.join(FAIL_ON)}")


@dataclass
class Fleet:
    """--hosts: the rows run on a Ray cluster's machines rather than this one."""

    hosts: Optional[str] = option("Run the rows on a Ray cluster's machines (`pip install 'e2e[fleet]'`): 'all-kinds' "
                                  "(a column of rows per machine kind) or a comma list of kinds; a kind is a node's "
                                  "e2e-kind:NAME resource.", None, shown="this machine only")
    ray_address: Optional[str] = option("--hosts: the Ray cluster's address (host:port, or ray://host:port for Ray "
                                        "Client).", None, shown="$RAY_ADDRESS, else the cluster this machine is a node of")

    def __post_init__(self) -> None:
        if self.hosts is not None and not [k for k in self.hosts.split(",") if k.strip()]:
            raise UsageError("--hosts: expected all-kinds or a comma list of machine kinds")
        if self.ray_address is not None and self.hosts is None:
            raise UsageError("--ray-address names the cluster of --hosts: give --hosts too")
