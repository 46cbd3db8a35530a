"""What a runner keeps across runs: models it converted, engines it built, keyed by the model.

`ModelCache` is a part of the runner base class (shared/runner.py): its methods are called on
the runner (`self.cached(...)`) and read `self.spec`, `self.settings` and `self.samples`.
"""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, NamedTuple, Sequence

from . import atomic
from .errors import UnsupportedError
from .tensors import Sample, load_samples


class Converted(NamedTuple):
    """What `convert_cached` gives: the folder of the converted files, the converter's log,
    and whether this run converted it (else it came from the cache)."""

    folder: str
    log: str
    converted: bool


REFUSED = ".refused.json"  # beside a conversion's entry: the engine's converter refused this model


class ModelCache:
    spec: Any
    settings: Dict[str, Any]
    samples: List[Sample]
    _clock: Any  # the runner's StageClock (shared/stages.py), whose `stage` the runner's stage() opens

    def cache_file(self, suffix: str, parts: Any, samples: Sequence[Sample] = ()) -> str:
        """Where something derived from this model (a converted model, a built engine) is kept
        across runs. Keyed by the model (the coordinator's digest of the file and its external
        data, or else the file's bytes and its external files by size and time), `parts`
        (versions, options) and the `samples` it was calibrated on. Other files in the model's
        folder do not count: a log written beside a model must not invalidate its caches."""
        digest = hashlib.sha256()
        if self.spec.model_sha256:
            digest.update(self.spec.model_sha256.encode())
        else:
            with open(self.spec.model_path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            folder = os.path.dirname(os.path.abspath(self.spec.model_path))
            beside = [(name, os.stat(path).st_size, os.stat(path).st_mtime_ns) for name in sorted(self.spec.model_files)
                      for path in [os.path.join(folder, name)] if os.path.isfile(path)]
            digest.update(json.dumps(beside).encode())
        digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
        for sample in samples:
            for name, array in sample.items():
                digest.update(name.encode() + array.tobytes())
        cache = self.spec.cache_dir or tempfile.gettempdir()
        os.makedirs(cache, exist_ok=True)
        return os.path.join(cache, digest.hexdigest()[:24] + suffix)

    def cached(self, suffix: str, parts: Any, make: Callable[[str], None], samples: Sequence[Sample] = (),
               phase: str = "convert") -> str:
        """The path of `cache_file(suffix, parts, samples)`, made by `make(tmp)` (a file or a
        folder at `tmp`) unless it is in the cache whole: made once however many runs want it at
        once, published whole, checked on every read (shared/atomic.py). A damaged entry is made
        again, and the row's settings say so (`cache_remade`)."""
        path = self.cache_file(suffix, parts, samples)
        outcome = atomic.ensure(path, make, "The cached " + suffix.lstrip("-."), log=print, phase=phase)
        if outcome.startswith("remade"):  # a row may remake more than one (MNN: specialised, then converted)
            remade = "{}: {}".format(os.path.basename(path), outcome.partition(": ")[2])
            before = self.settings.get("cache_remade")
            self.settings["cache_remade"] = "{}; {}".format(before, remade) if before else remade
        return path

    def convert_cached(self, suffix: str, parts: Any, make: Callable[[str], str], log: str = "convert.log",
                       cache: bool = True) -> Converted:
        """A model converted by a tool into a folder, kept in the cache with the tool's log.
        `make(folder)` writes the converted files into `folder` (made for it) and returns the
        log, which is kept beside them as `log`. Returns the folder, the log and whether it was
        converted now (`Converted`); on a cache hit the log is printed into the runner's log, as
        the tool printed it when it ran. The entry is `cached(suffix, parts, ...)`'s (the same
        key); with `cache` off it is `<entry>.uncached`, made again on every run. The row's
        settings say where the log is (`converter_log`) and whether this run made it
        (`conversion`: converted or cached).

        A converter that refuses the model (`UnsupportedError`: an operator, a node it has no
        lowering for) refuses it again with the same model, tool versions and options: the
        refusal is kept beside the entry and given again without converting (LiteRT's onnx2tf
        spent 27 s failing on faster_rcnn in every warm run), at the stage it failed in, saying
        so. Any other failure (a crash, a kill, memory) is not kept."""
        entry = self.cache_file(suffix, parts) + ("" if cache else ".uncached")
        if cache:
            self._refuse_again(entry + REFUSED)
        made = []  # type: List[str]

        def convert(tmp: str) -> None:
            os.mkdir(tmp)
            text = make(tmp)
            with open(os.path.join(tmp, log), "w", encoding="utf-8") as f:
                f.write(text)
            made.append(text)

        if cache:
            try:
                self.cached(suffix, parts, convert)
            except UnsupportedError as e:
                self._keep_refusal(entry + REFUSED, e)
                raise
        else:
            shutil.rmtree(entry, ignore_errors=True)
            convert(entry)
        self.settings.update(converter_log=os.path.join(entry, log), conversion="converted" if made else "cached")
        if made:
            return Converted(entry, made[0], True)
        with open(os.path.join(entry, log), encoding="utf-8") as f:
            text = f.read()
        print(text, flush=True)
        return Converted(entry, text, False)

    def _keep_refusal(self, path: str, error: UnsupportedError) -> None:
        refusal = {"message": str(error), "operator": error.operator, "node": error.node,
                   "stage": self._clock.failed, "when": time.strftime("%Y-%m-%d %H:%M")}
        try:
            atomic.write_text(path, json.dumps(refusal, indent=1))
            atomic.seal(path)
        except OSError:  # a cache that cannot be written costs the next run the conversion, nothing else
            pass

    def _refuse_again(self, path: str) -> None:
        """Raise the refusal kept at `path`, if it is whole."""
        if atomic.problem(path) is not None:
            return
        with open(path, encoding="utf-8") as f:
            refusal = json.load(f)
        atomic.used(path)
        self.settings.update(conversion="refused before (cached)", converter_refusal=path)
        stage = refusal.get("stage")
        with self.stage(stage) if stage else contextlib.nullcontext():
            # what it is comes first: a row's reason is one line, cut at 300 characters, and a
            # converter's message (onnx2tf's) can fill them
            raise UnsupportedError("kept from the conversion of {} (`e2e cache clear engines` converts again): "
                                   "{}".format(refusal["when"], refusal["message"]),
                                   refusal.get("operator"), refusal.get("node"))

    def calibration_samples(self) -> List[Sample]:
        """What int8 quantization calibrates on: `--calibration` images, else the test inputs."""
        return load_samples(self.spec.calibration_path) if self.spec.calibration_path else self.samples
