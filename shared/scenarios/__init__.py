"""The scenarios: how a timed loop drives the engine, one module each (DESIGN: "a scenario").

A scenario module defines `SCENARIO`, an instance of a `Scenario` subclass. This package finds
them by scanning itself (no list to edit): a new scenario is one file here, and `--scenario`,
`RunSpec` and the coordinator's sweep accept it from then on. The runner base class hands the
spec's scenario its measuring (shared/measure.py calls the methods below in turn); an engine
changes what a scenario does only through the runner hooks the scenario names in `hooks` (the
throughput scenario's requests go through `submit_impl`, which OpenVINO overrides with its own
AsyncInferQueue). The report asks a scenario what it needs too (`ranked`, `priced`, `point_label`,
through `declared`, which answers for a name no longer registered): no report module names one.
"""
import importlib
import pkgutil
from typing import Any, Dict, List, Tuple

from ..tensors import Sample
from ..timing import Loop, StopRule


class Scenario:
    """What the measure step asks of a scenario. `runner` is the shared.runner.Runner measured."""

    name = ""
    #: a phrase for `--scenario`'s help: what the loop does
    summary = ""
    #: whether it keeps requests in flight (it takes `--concurrency`; the latency scenario has one)
    concurrent = False
    #: the runner hooks its loop calls: what an engine overrides to change how it is driven
    hooks: Tuple[str, ...] = ("infer_impl",)
    #: whether the verdict ranks its rows at batch 1 by p50 (the deploy decision; the latency scenario)
    ranked = False
    #: whether its samples/s are what --price-per-hour costs per 1,000 inferences (the throughput scenario)
    priced = False

    def point_label(self, batch: int, concurrency: str) -> str:
        """The point in the sweep's pivot and chart: "latency b4", "throughput b4 c=2" (the
        concurrency asked, shown where the scenario keeps requests in flight)."""
        return f"{self.name} b{batch}" + (f" c={concurrency}" if self.concurrent else "")

    def setup(self, runner: Any) -> None:
        """Before `load_impl` (which may change them): the requests in flight, and each one's
        share of the thread budget."""

    def call(self, runner: Any, feeds: Sample) -> Any:
        """One untimed call (first inference, parity outputs, warm-up): its raw outputs. Looked
        up per call: `instrument_impl` may shadow `infer_impl` while on."""
        return runner.infer_impl(feeds)

    def warm(self, runner: Any, samples: List[Sample]) -> int:
        """More untimed calls after the warm-up, before timing; how many."""
        return 0

    def loop(self, runner: Any, samples: List[Sample], rule: StopRule) -> Loop:
        """One timed loop over the samples in turn, until `rule` says stop."""
        raise NotImplementedError

    def settings(self, runner: Any) -> Dict[str, Any]:
        """What the row's settings record of how it was driven (after timing)."""
        return {}

    def throughput_per_s(self, batch_size: int, latencies_ms: List[float], wall_s: float, mean_ms: float) -> float:
        """Samples per second from the timed calls."""
        raise NotImplementedError


def _scan() -> Dict[str, Scenario]:
    found: Dict[str, Scenario] = {}
    for info in pkgutil.iter_modules(__path__):  # in file-name order
        module = importlib.import_module("{}.{}".format(__name__, info.name))
        scenario = getattr(module, "SCENARIO", None)
        if isinstance(scenario, Scenario):
            found[scenario.name] = scenario
    return found


#: name -> scenario, every module of this package that defines one
REGISTRY = _scan()


def get(name: str) -> Scenario:
    """The scenario called `name` (RunSpec has checked it is one)."""
    return REGISTRY[name]


def declared(name: str) -> Scenario:
    """What the report reads of a row's scenario: the registered one, else (a report from a version
    with other scenarios) a bare `Scenario` of that name: not ranked, not priced, labelled by name
    and batch, so the report still renders its rows."""
    found = REGISTRY.get(name)
    if found is not None:
        return found
    unknown = Scenario()
    unknown.name = name
    return unknown
