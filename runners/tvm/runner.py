"""Apache TVM runner: ONNX -> Relax (TVM's ONNX frontend) -> LLVM for the host CPU -> Relax VM."""
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from shared import EngineUnavailable, Runner, RunnerTimeout, Sample, UnsupportedError
from shared.specialise import specialised_model
from shared.tensors import graph_io

PIPELINES = ("default", "cpu")
HINT = "TVM's Relax ONNX frontend cannot take this graph; try another engine or simplify the graph"


@dataclass
class Options:
    opt_level: int = 3  # pass context and LLVM codegen
    pipeline: str = "default"  # "default": tvm.compile's; "cpu": adds constant folding and op fusion
    mcpu: str = ""  # LLVM CPU name; empty: the host CPU as LLVM detects it
    specialise: bool = True  # fold the shape arithmetic for the inputs' fixed shapes (shared/specialise.py)
    trials: int = 0  # MetaSchedule measurements in all (tuning.py); 0: untuned
    trials_per_task: int = 0  # cap per kernel; 0: an even share of `trials`
    population: int = 128  # evolutionary search's population; TVM's default 512 searches 4x longer
    min_task_share: float = 0.001  # kernels with less of the model's FLOPs keep the default schedule

    def __post_init__(self) -> None:
        if type(self.opt_level) is not int or self.opt_level not in (0, 1, 2, 3):
            raise ValueError("opt_level must be one of 0, 1, 2, 3, got {!r}".format(self.opt_level))
        for name in ("trials", "trials_per_task", "population"):
            if type(getattr(self, name)) is not int or getattr(self, name) < 0:
                raise ValueError("{} must be an integer >= 0, got {!r}".format(name, getattr(self, name)))
        if type(self.min_task_share) not in (int, float) or not 0 <= self.min_task_share < 1:
            raise ValueError("min_task_share must be a number in [0, 1), got {!r}".format(self.min_task_share))
        if self.pipeline not in PIPELINES:
            raise ValueError("pipeline must be one of {}, got {!r}".format(
                ", ".join(PIPELINES), self.pipeline))


class TvmRunner(Runner):
    packages = ["apache-tvm", "apache-tvm-ffi", "onnx", "numpy", "ml_dtypes", "xgboost-cpu"]
    Options = Options
    first_call = False  # set when a model is built: the next call is bounded by the row's budget
    # Not concurrent: the runtime's thread pool belongs to the calling thread and is sized by
    # TVM_NUM_THREADS (the whole budget), so requests on several threads would oversubscribe
    # the cores; the throughput scenario runs one request in flight with the whole budget.

    def available_impl(self) -> None:
        import tvm

        if not tvm.runtime.enabled("llvm"):
            raise EngineUnavailable("this TVM build has no LLVM backend; install the apache-tvm wheel")

    def version_impl(self) -> str:
        import tvm

        return tvm.__version__

    def load_impl(self) -> None:
        import onnx
        import tvm
        from tvm.relax.frontend.onnx import from_onnx, onnx_frontend

        model = onnx.load(self.spec.model_path)
        graph = model.graph
        self.input_names, self.output_names = graph_io(graph)
        shapes, dtypes = _input_types(self.samples, graph)
        static = all(isinstance(d, int) for dims in shapes.values() for d in dims)
        tuned = self.options.trials > 0
        if tuned and not static:
            raise UnsupportedError("MetaSchedule tunes fixed shapes only, and the inputs' shapes vary "
                                   "({}); run TVM untuned (tvm.trials=0) or with inputs of one shape".format(
                                       {k: [str(d) for d in v] for k, v in shapes.items()}))
        if self.options.specialise and static:
            with self.stage("convert"):
                path, self.settings["specialised"] = specialised_model(self, shapes)
                model = onnx.load(path)
                graph = model.graph
        if tuned:  # only the weights become parameters (below); shapes and indices stay constants
            self.settings["constants_as_nodes"] = _sibling("constants").constants_as_nodes(graph)
        target = self._target()
        self.settings.update(
            target=str(target), mcpu=str(target.attrs["mcpu"]), opt_level=self.options.opt_level,
            pipeline="static_shape_tuning" if tuned else self.options.pipeline,
            num_threads=tvm.runtime.num_threads(),  # the runtime's pool
            input_shapes={k: [str(d) for d in v] for k, v in shapes.items()})
        self.precision = "fp32"  # the fp32 export compiled as it is: no mixed-precision pass, no quantization
        self.settings["importer_fixes"] = _sibling("importer_fixes").apply(onnx_frontend)
        _guard_nms(onnx_frontend)
        with self.stage("convert"):
            try:
                # tuning prepacks the weights, which needs them as parameters, not constants
                mod = from_onnx(model, shape_dict=shapes, dtype_dict=dtypes, keep_params_in_input=tuned)
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as e:  # the importer refusing the graph is an answer, not a crash
                raise _unsupported(e, graph) from None
        del model, graph  # the module holds its own copy of the weights
        self.params = []  # type: List[Any]
        self._compile(mod, target, shapes, tuned)

    def _compile(self, mod: Any, target: Any, shapes: Dict[str, list], tuned: bool) -> None:
        """The compile stage: tuned when asked, built for `target`, loaded in a Relax VM."""
        import tvm
        from tvm import relax
        from tvm.relax.frontend import detach_params

        with self.stage("compile"):
            cpu = self.options.pipeline == "cpu"
            pipeline = relax.get_default_pipeline(target) if cpu else "default"
            if tuned:  # outside the try: a failed tuning is a failure, not a model TVM cannot take
                mod, params = detach_params(mod)
                with tvm.transform.PassContext(opt_level=self.options.opt_level):
                    mod = self._tune(mod, target, shapes)
                pipeline = "default"
            try:
                with tvm.transform.PassContext(opt_level=self.options.opt_level):
                    executable = tvm.compile(mod, target, relax_pipeline=pipeline)
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as e:
                raise UnsupportedError("TVM could not build the imported model: {} (try another "
                                       "engine)".format(_first_line(e)), operator=_relax_op(str(e))) from None
            self.vm = relax.VirtualMachine(executable, tvm.cpu())
            self.first_call = True
            if tuned:  # the weights in the layouts the tuned kernels read, once
                self.params = list(self.vm["main_transform_params"](params["main"]))

    def _tune(self, mod: Any, target: Any, shapes: Dict[str, list]) -> Any:
        """Tune (or find the records of an earlier tuning in the cache) and apply the records."""
        import tvm

        tuning = _sibling("tuning")
        o = self.options
        mod = tuning.prepare(mod, target)
        work_dir = self.cache_file(".tvm-tuning", [
            tvm.__version__, str(target), o.trials, o.trials_per_task, o.population, o.min_task_share, o.specialise,
            {k: [str(d) for d in v] for k, v in shapes.items()}])
        self.settings["tuning"] = tuning.tune(mod, target, work_dir, o.trials, o.trials_per_task,
                                              o.population, workers=self.spec.threads, min_share=o.min_task_share)
        return tuning.apply(mod, target, work_dir)

    def _target(self) -> Any:
        import tvm
        from tvm.target import codegen

        # "mcpu": "native" falls back to generic in the 0.27 wheel; LLVM's own host detection does not.
        mcpu = self.options.mcpu or codegen.llvm_get_system_cpu()
        if not codegen.llvm_is_valid_cpu(mcpu, codegen.llvm_get_system_triple()):
            raise ValueError("mcpu {!r} is not a CPU this TVM's LLVM knows; leave it empty for the "
                             "host CPU".format(mcpu))
        return tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "num-cores": self.spec.threads,
                                  "opt-level": self.options.opt_level})

    def infer_impl(self, feeds: Sample) -> Sample:
        if self.first_call:
            self.first_call = False
            return _bounded_call(self._call, feeds, self.spec.max_time_s, self.spec.session, self.options.trials)
        return self._call(feeds)

    def _call(self, feeds: Sample) -> Sample:
        import tvm

        out = self.vm["main"](*[tvm.runtime.tensor(feeds[name]) for name in self.input_names], *self.params)
        outs = [out] if isinstance(out, tvm.runtime.Tensor) else list(out)
        return {name: o.numpy() for name, o in zip(self.output_names, outs)}

    def release_impl(self) -> None:
        self.vm, self.params = None, []


def _bounded_call(call_once: Callable[[Sample], Sample], feeds: Sample, seconds: float, session: bool,
                  trials: int) -> Sample:
    """The first call, given up after `seconds` (the row's budget): untuned, one call of a
    detector can take many minutes, and every test input is called at least once more. The
    VM releases the GIL, so the wait ends on time; the call's thread dies with the process."""
    import threading

    done = {}  # type: Dict[str, Any]

    def call() -> None:
        try:
            done["outputs"] = call_once(feeds)
        except BaseException as e:  # raised again on the runner's thread
            done["error"] = e

    worker = threading.Thread(target=call, name="tvm-first-call", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        budget = "--rounds-budget" if session else "--max-time"
        advice = ("raise the budget ({}) or tune more (tvm.trials)".format(budget) if trials else
                  "untuned, every kernel runs TVM's default schedule on one core: tune it with "
                  "-o tvm.trials=2000 (cached once done), or wait for it with a larger {}".format(budget))
        raise RunnerTimeout("one call takes longer than the row's budget: the first had not returned after "
                            "{:g} s ({}); {}".format(seconds, budget, advice))
    if "error" in done:
        raise done["error"]
    return done["outputs"]


def _sibling(name: str) -> Any:
    """A module beside this file (a runner is loaded from its path, not imported as a package)."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("e2e_tvm_" + name, os.path.join(os.path.dirname(__file__), name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _input_types(samples: List[Sample], graph: Any) -> Tuple[Dict[str, list], Dict[str, str]]:
    """Bind every dim all samples agree on, so the compiled graph is as static as the inputs allow;
    dims that vary stay symbolic, shared by their ONNX dim name as the frontend does."""
    import tvm

    declared = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input}
    symbols = {}  # type: Dict[str, Any]
    shapes, dtypes = {}, {}
    for name, first in samples[0].items():
        dims = [s[name].shape for s in samples if name in s]
        if all(len(d) == first.ndim for d in dims):
            params = declared.get(name) or [""] * first.ndim
            shapes[name] = []
            for i, values in enumerate(zip(*dims)):
                key = params[i] or "{}_{}".format(name, i)
                shapes[name].append(values[0] if len(set(values)) == 1 else
                                    symbols.setdefault(key, tvm.tirx.Var(key, "int64")))
        dtypes[name] = str(first.dtype)
    return shapes, dtypes


def _unsupported(error: Exception, graph: Any) -> UnsupportedError:
    """Name the ONNX node the frontend was converting when it failed."""
    import onnx
    import tvm

    node = None  # type: Optional[Any]
    tb = error.__traceback__
    while tb is not None:  # the innermost `node` is the deepest one (inside an If branch)
        candidate = tb.tb_frame.f_locals.get("node")
        node = candidate if isinstance(candidate, onnx.NodeProto) else node
        tb = tb.tb_next
    marker = "not supported for frontend ONNX:"  # the up-front check, before any node is converted
    if isinstance(error, tvm.error.OpNotImplemented) and marker in str(error):
        first_op = str(error).split(marker, 1)[1].split(",")[0].strip()
        node = next((n for n in graph.node if n.op_type == first_op), None)
    if node is None:
        return UnsupportedError("{}: {}".format(HINT, _first_line(error)))
    return UnsupportedError("converting {} node {!r}: {} ({})".format(
        node.op_type, node.name, _first_line(error), HINT), operator=node.op_type, node=node.name)


def _relax_op(message: str) -> Optional[str]:
    """The Relax operator a build error names, on any line (no ONNX node survives into the build):
    TVM 0.27's VM codegen, given an op with no lowering, ends "Offending call:\nR.ewise_fma(x, x, x)";
    other errors may name it as "relax.ewise_fma"."""
    found = re.search(r"Offending call:\s*R\.([\w.]+)\(", message)
    if found:
        return "relax." + found.group(1)
    found = re.search(r"\brelax\.[\w.]+", message)
    return found.group(0) if found else None


def _first_line(error: Exception, limit: int = 400) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # TVM's checks read "Check failed: (<C++ condition>) is false: <what went wrong>"
    first = re.sub(r"^Check failed: \(.*\) is false:\s*", "", lines[0]) if lines else ""
    text = "{}: {}".format(type(error).__name__, first)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _guard_nms(frontend: Any) -> None:
    """TVM 0.27 segfaults on NonMaxSuppression whose boxes or scores have a known rank but unknown
    dims (e.g. after a Slice with runtime bounds); raise before the C++ call instead."""
    from tvm import relax

    impl = getattr(getattr(frontend, "NonMaxSuppression", None), "_impl_v10", None)
    if impl is None or getattr(impl, "e2e_guarded", False):
        return

    def guarded(cls: Any, bb: Any, inputs: Any, attr: Dict[str, Any], params: Any) -> Any:
        for what, x in zip(("boxes", "scores"), inputs):
            ty = getattr(x, "ty", None)
            if isinstance(ty, relax.TensorType) and ty.ndim >= 0 and ty.shape is None:
                raise ValueError("NonMaxSuppression {} has rank {} but dims TVM cannot infer (they depend "
                                 "on the data, e.g. after NonZero), which crashes TVM 0.27".format(what, ty.ndim))
        return impl(bb, inputs, attr, params)

    guarded.e2e_guarded = True  # type: ignore[attr-defined]
    frontend.NonMaxSuppression._impl_v10 = classmethod(guarded)
