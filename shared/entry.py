"""The one entry point of every runner, in a container or a virtualenv alike:

    python -m shared.entry --runner runners/ort/runner.py --io DIR

reads DIR/spec.json, writes DIR/result.json and DIR/outputs.npz. The launcher sends stdout
and stderr to DIR/runner.log. Exit code 0 whenever result.json was written, whatever the
engine's status: the status is in the result.
"""
import argparse
import faulthandler
import importlib.util
import os
import sys
import time
from typing import List, Optional

from . import faults
from .errors import ProtocolError
from .result import RunResult
from .runner import find_runner_class
from .session import RunnerChannel
from .spec import RunSpec
from .tensors import save_samples

SPEC, RESULT, OUTPUTS, LOG, STAGE, PROGRESS = \
    "spec.json", "result.json", "outputs.npz", "runner.log", "stage", "progress.json"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.entry")
    parser.add_argument("--runner", required=True, help="path to the engine's runner.py")
    parser.add_argument("--io", required=True, help="directory with spec.json; results go here")
    args = parser.parse_args(argv)

    faulthandler.enable()  # a native crash still leaves a Python traceback in the log
    spec = RunSpec.load(os.path.join(args.io, SPEC))
    if spec.memory_limit_mb:  # a container has its cgroup limit instead
        import resource

        limit = spec.memory_limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # The first log line carries the wall clock: the launcher's start overhead is measured from it.
    print("e2e runner {} starting at {:.3f}".format(spec.engine, time.time()), flush=True)
    try:
        runner_cls = _load_runner_class(args.runner)
    except Exception as e:  # an import error in runner code is the engine's failure, not ours
        result, outputs = RunResult.from_error(spec.engine, e, stage="setup"), []
    else:
        runner = runner_cls(spec)
        runner.stage_file = os.path.join(args.io, STAGE)
        runner.progress_file = os.path.join(args.io, PROGRESS)
        if spec.session:
            runner.channel = RunnerChannel(args.io)
        result, outputs = runner.run()
        if runner.channel is not None:
            runner.channel.close()
    if outputs:
        save_samples(os.path.join(args.io, OUTPUTS), outputs)
        result.outputs_file = OUTPUTS
    broken = faults.result_text(spec.fault, result.to_dict())
    if broken is None:
        result.save(os.path.join(args.io, RESULT))
    else:
        with open(os.path.join(args.io, RESULT), "w") as f:
            f.write(broken)
    print("e2e runner {} finished: {} {}".format(spec.engine, result.status, result.reason), flush=True)
    return 0


def _load_runner_class(path: str) -> type:
    module_spec = importlib.util.spec_from_file_location("e2e_runner", path)
    if module_spec is None or module_spec.loader is None:
        raise ProtocolError("cannot load runner module {}".format(path))
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["e2e_runner"] = module
    module_spec.loader.exec_module(module)
    cls = find_runner_class(module)
    if cls is None:
        raise ProtocolError("{} must define exactly one Runner subclass".format(path))
    return cls


if __name__ == "__main__":
    code = main()
    # Everything is on disk. Skip the interpreter's teardown: freeing an engine's arenas and
    # joining its thread pools can take a second, and the next engine waits for this exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
