"""The report's sections, typed: `device`, `model` and `data` of report.json (`setup`: setup.py).

Field names are the JSON keys. Two rules keep the JSON as an older e2e wrote it: a field left
None is not written (a key the run did not have stays out of the file), and the keys an older
e2e wrote into a section but this one no longer does (`LEGACY`) load into `legacy` and are
written back where they were, so `e2e report OLD_RUN` leaves an old run's data as it found it.
"""
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type, TypeVar

from shared.records import Record
from shared.typed_json import convert

S = TypeVar("S", bound="Section")


@dataclass(kw_only=True)
class Section(Record):
    """One section of report.json (see the module's docstring for its two rules)."""

    LEGACY: ClassVar[Tuple[str, ...]] = ()
    legacy: Dict[str, Any] = field(default_factory=dict)  # an older report's LEGACY keys, as they were

    def to_dict(self) -> Dict[str, Any]:
        plain = {k: v for k, v in super().to_dict().items() if v is not None and k != "legacy"}
        return {**plain, **self.legacy}

    @classmethod
    def from_dict(cls: Type[S], data: Any) -> S:
        return convert(cls, cls.lift(data), cls.__name__)

    @classmethod
    def lift(cls, data: Any) -> Any:
        """The section's JSON with its LEGACY keys moved under "legacy", the field that holds them."""
        if not isinstance(data, dict) or not cls.LEGACY:
            return data
        return {**{k: v for k, v in data.items() if k not in cls.LEGACY},
                "legacy": {k: v for k, v in data.items() if k in cls.LEGACY}}


@dataclass
class Gpu(Record):
    index: int
    name: str
    memory_mb: int
    driver: str
    cuda: str


@dataclass(kw_only=True)
class Device(Section):
    """The machine (coordinator/machine/host.py)."""

    LEGACY: ClassVar[Tuple[str, ...]] = ("container_runtime",)  # the Docker daemon's version, now in `launchers`
    cpu: str
    physical_cores: int
    logical_cores: Optional[int] = None
    cpu_flags: List[str] = field(default_factory=list)
    memory_gb: float
    os: str
    python: str
    gpus: List[Gpu] = field(default_factory=list)
    launchers: Optional[Dict[str, Dict[str, Any]]] = None  # what the launchers that ran rows say of themselves
    # measured GFLOP/s (int8: GOP/s) of a matrix product per precision on the rows' threads
    # (coordinator/machine/peak.py); None for a precision this torch has no product for here
    peak_gflops: Optional[Dict[str, Optional[float]]] = None


@dataclass
class TensorInfo(Record):
    name: str
    dtype: str  # ONNX's name, lower case: float, int64
    shape: List[Any]  # sizes, and names for dynamic dimensions


@dataclass
class WeightsInfo(Record):
    kind: str  # pretrained, random, checkpoint, onnx
    detail: str
    warning: str = ""  # why pretrained weights were not used


@dataclass(kw_only=True)
class ModelInfo(Section):
    """The ONNX export (coordinator/model/export.py, cached as export.json) or the ONNX file given."""

    onnx_file: str
    file_bytes: int  # external data files included
    sha256: str
    external_data: List[str] = field(default_factory=list)  # files beside the model holding its weights
    opset: int
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]
    nodes: int
    operators: Dict[str, int]  # op type -> count, most used first
    name: str
    source: str  # the factory, or the ONNX file's path
    task: str  # the model family (coordinator/tasks/)
    exporter: str
    # these two: exports since e2e tried several exporters (None in an older report, kept so)
    exporters_not_used: Optional[List[str]] = None  # "exporter: why not", tried before `exporter`
    example_inputs: Optional[str] = None  # a factory's: the --inputs given, or what e2e assumed
    torch: Optional[str] = None  # these four: exports only, not an ONNX file given as is
    export_seconds: Optional[float] = None
    input_size: Optional[List[int]] = None
    parameters: Optional[int] = None
    gflop: Optional[float] = None  # one call at batch 1, PyTorch's count (coordinator/model/flops.py)
    weights: WeightsInfo


@dataclass(kw_only=True)
class DataInfo(Section):
    """The test inputs (coordinator/model/testdata.py, cached as data.json), and in a report where they are."""

    images: List[str]
    source: str
    count: int
    preprocessing: str
    input_shapes: Dict[str, List[int]]
    evaluation: Dict[str, Any] = field(default_factory=dict)  # with --dataset: what the family scores on
    inputs_path: str = ""  # the .npz in the cache
    calibration: Optional["DataInfo"] = None  # the calibration inputs (--calibration); None: the test inputs
    picture_input: Optional[str] = None  # the kept first input report.html draws on, relative to the run

    @classmethod
    def lift(cls, data: Any) -> Any:
        """An older e2e wrote "the test inputs" where no calibration was given: kept as it was."""
        if isinstance(data, dict) and isinstance(data.get("calibration"), str):
            return {**{k: v for k, v in data.items() if k != "calibration"},
                    "legacy": {"calibration": data["calibration"]}}
        return super().lift(data)
