"""IREE runner: the ONNX export imported to MLIR by `iree-import-onnx` (stage `convert`), compiled
ahead of time by `iree-compile` for the llvm-cpu backend and this host's CPU (stage `compile`),
both in child processes and cached as one sealed entry, then run by IREE's runtime on the
`local-task` driver.

- When every test input has one shape, the importer gets the shape-specialised export
  (shared/specialise.py): IREE compiles static shapes into its kernels.
- Threads: `--task_topology_max_group_count=<threads>`, a process-wide runtime flag parsed before
  the device exists; the row reads back the worker threads IREE started.
- The compiler flags are the llvm-cpu ones measured fastest here (data tiling,
  ukernels, aggressive fusion, O3; README has what each was measured to give).
- A compilation that fails leaves ops of the torch dialect that nothing lowers: the row names the
  first (torch.torchvision.roi_align for ONNX's RoiAlign) from the compiler's own dump.
"""
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, List, Optional

from shared import Runner, Sample, UnsupportedError
from shared.environment import cpu_flags, cpu_model
from shared.specialise import specialised_model
from shared.tensors import graph_io, one_shape

IMPORT = "import sys; from iree.compiler.tools.import_onnx.__main__ import _cli_main; sys.exit(_cli_main())"
COMPILE = "import sys; from iree.compiler.tools.scripts.iree_compile.__main__ import main; sys.exit(main())"
TARGET = ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
          "--iree-llvmcpu-target-cpu=host"]
# On failure the compiler prints the IR it could not lower (weights elided): the ops left in it
DUMP = "// -----// IR Dump After"
LEFT_OVER = re.compile(r"= (torch\.[a-z_0-9]+(?:\.[a-z_0-9]+)+)\b")
NOT_OPS = ("torch.constant.", "torch.vtensor", "torch.prim.ListConstruct")
NOT_LEGALIZED = re.compile(r"failed to legalize operation '([^']+)'")
ONNX_LEFT = re.compile(r'torch\.operator "onnx\.(\w+)"')  # an ONNX op torch-mlir did not convert
# torch-mlir's lowering of an ONNX op that IREE's input conversion has no lowering for
ONNX_OF = {"torch.torchvision.roi_align": "RoiAlign", "torch.torchvision.roi_pool": "MaxRoiPool",
           "torch.torchvision.nms": "NonMaxSuppression"}


@dataclass
class Options:
    specialise: bool = True  # fold the export's shape arithmetic for the inputs' one shape
    data_tiling: bool = True  # --iree-opt-data-tiling
    ukernels: str = "all"  # --iree-llvmcpu-enable-ukernels
    aggressive_fusion: bool = True  # --iree-dispatch-creation-enable-aggressive-fusion
    opt_level: str = "O3"  # --iree-opt-level

    def __post_init__(self) -> None:
        for name in ("specialise", "data_tiling", "aggressive_fusion"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError("{} must be true or false, got {!r}".format(name, getattr(self, name)))
        if self.ukernels not in ("default", "none", "all"):
            raise ValueError("ukernels must be one of default, none, all")
        if self.opt_level not in ("O0", "O1", "O2", "O3"):
            raise ValueError("opt_level must be one of O0, O1, O2, O3")

    def flags(self) -> List[str]:
        return ["--iree-opt-data-tiling={}".format(str(self.data_tiling).lower()),
                "--iree-llvmcpu-enable-ukernels={}".format(self.ukernels),
                "--iree-dispatch-creation-enable-aggressive-fusion={}".format(str(self.aggressive_fusion).lower()),
                "--iree-opt-level={}".format(self.opt_level)]


class IreeRunner(Runner):
    packages = ["iree-base-compiler", "iree-base-runtime", "numpy", "onnx"]
    Options = Options

    def available_impl(self) -> None:
        import iree.compiler  # noqa: F401
        import iree.runtime  # noqa: F401

    def version_impl(self) -> str:
        from importlib.metadata import version

        return version("iree-base-runtime")

    def load_impl(self) -> None:
        self.input_names, self.output_names = graph_io(self.spec.model_path)
        shapes = one_shape(self.samples)
        flags = TARGET + self.options.flags()
        with self.stage("convert"):
            source, name = self.spec.model_path, os.path.basename(self.spec.model_path)
            if self.options.specialise and shapes:
                source, self.settings["specialised"] = specialised_model(self, shapes)
                name = os.path.basename(os.path.dirname(source))
            self.settings["input_shapes"] = shapes or "vary between inputs: the dynamic export"
            compiled = self._compiled(source, name, flags)
        with self.stage("compile"):
            self.module = self._load(compiled)
        self.precision = "fp32"  # f32 in, f32 kernels: no demotion flag is passed
        self.settings.update(driver="local-task", compiler_flags=flags, function=self.function_name,
                             task_topology_max_group_count=self.spec.threads, worker_threads=_worker_threads())

    def _compiled(self, source: str, name: str, flags: List[str]) -> str:
        """The .vmfb of `source`, from the cache when compiled before: one sealed entry, a folder
        of `model.vmfb` and `convert.log` (both tools' output), copied into the runner's log."""
        from importlib.metadata import version

        def make(folder: str) -> str:
            mlir = os.path.join(folder, "model.mlir")
            with self.stage("convert"):
                imported = _tool(IMPORT, "iree-import-onnx", [source, "-o", mlir])
                if imported.returncode != 0 or not os.path.isfile(mlir):
                    raise import_error(imported.stdout, imported.returncode)
            with self.stage("compile"):
                compiled = _tool(COMPILE, "iree-compile", [mlir] + flags + [
                    "-o", os.path.join(folder, "model.vmfb"), "--mlir-print-ir-after-failure",
                    "--mlir-elide-elementsattrs-if-larger=16", "--mlir-elide-resource-strings-if-larger=16"])
                os.remove(mlir)  # the weights inlined: as big as the model, needed no more
                if compiled.returncode != 0:
                    raise compile_error(compiled.stdout, compiled.returncode)
            return imported.shown + compiled.shown

        parts = [version("iree-base-compiler"), name, flags, cpu_model(), cpu_flags()]
        folder = self.convert_cached(".iree", parts, make).folder
        self.settings["compiled_model"] = path = os.path.join(folder, "model.vmfb")
        return path

    def _load(self, path: str) -> Any:
        from iree.runtime import flags

        # Process-wide, read when the local-task device is made (below): one worker group per thread
        flags.parse_flags("--task_topology_max_group_count={}".format(self.spec.threads))
        import iree.runtime as rt

        config = rt.Config("local-task")
        vm_module = rt.VmModule.mmap(config.vm_instance, path)
        # the import names the function after the graph; `<name>$async` is its fence-taking twin
        names = [n for n in vm_module.function_names if not n.startswith("__") and "$" not in n]
        if not names:
            raise RuntimeError("IREE's compiled module exports no function (functions: {})".format(
                vm_module.function_names))
        self.function_name = "main_graph" if "main_graph" in names else names[0]
        return rt.load_vm_module(vm_module, config)[self.function_name]

    def infer_impl(self, feeds: Sample) -> List[Any]:
        import numpy as np

        out = self.module(*[feeds[name] for name in self.input_names])
        out = out if isinstance(out, (list, tuple)) else [out]
        return [np.array(v.to_host()) for v in out]  # host copies, as every engine's

    def outputs_impl(self, raw: List[Any]) -> Sample:
        if len(raw) != len(self.output_names):
            raise RuntimeError("IREE returned {} outputs for {}".format(len(raw), len(self.output_names)))
        return dict(zip(self.output_names, raw))

    def release_impl(self) -> None:
        self.module = None


def _tool(code: str, name: str, args: List[str]) -> "subprocess.CompletedProcess[str]":
    """Run one of IREE's tools (its console script's entry point) in a child process; its output
    goes to the runner's log, without the IR it dumps when it fails (the parse reads that)."""
    run = subprocess.run([sys.executable, "-c", code] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, errors="replace")
    lines = run.stdout.splitlines()
    shown = [line for line in lines if not line.startswith((" ", "#", "}", "module", "//", "func"))]
    run.shown = "$ {} {}\n{}\n{} exit status {}\n".format(name, " ".join(args), "\n".join(shown[:200]), name,
                                                          run.returncode)
    print(run.shown, flush=True)
    return run


def _worker_threads() -> Optional[int]:
    """IREE's worker threads in this process, by name (iree-worker-N): what the topology flag gave."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    count = 0
    for task in tasks:
        try:
            with open("/proc/self/task/{}/comm".format(task)) as f:
                count += f.read().startswith("iree-worker")
        except OSError:
            pass
    return count


def import_error(log: str, returncode: int) -> Exception:
    """The importer takes any ONNX op (as a generic torch.operator); it fails on a broken file."""
    return RuntimeError("iree-import-onnx failed (exit status {}): {}".format(returncode, _last(log)))


def compile_error(log: str, returncode: int) -> Exception:
    """What a failed iree-compile means. An op with no lowering shows as the IR left after the
    failing pass: ops of the torch dialect (its error line names only a constant feeding one)."""
    said = NOT_LEGALIZED.search(log)
    dump = log[log.find(DUMP):] if DUMP in log else ""  # not the source lines the errors quote
    onnx_left = sorted(set(ONNX_LEFT.findall(dump)))
    if onnx_left:
        return UnsupportedError("IREE has no conversion for ONNX {}; the IR it could not lower still holds it{}; "
                                "try another engine".format(", ".join(onnx_left), " ({})".format(said.group(0)) if said else ""),
                                operator=onnx_left[0])
    left = sorted({op for op in LEFT_OVER.findall(dump) if not op.startswith(NOT_OPS)})
    if left:
        op = left[0]
        onnx_op = ONNX_OF.get(op, op)
        return UnsupportedError("iree-compile has no lowering for {} (from ONNX {}); the IR it could not lower "
                                "still holds {}{}; try another engine".format(
                                    op, onnx_op, ", ".join(left), " ({})".format(said.group(0)) if said else ""),
                                operator=onnx_op)
    return RuntimeError("iree-compile failed (exit status {}): {}".format(returncode, _last(log)))


def _last(log: str) -> str:
    errors = [line.strip() for line in log.splitlines() if "error" in line.lower()]
    lines = errors or [line.strip() for line in log.splitlines() if line.strip()]
    return lines[0][:500] if lines else "no output"

