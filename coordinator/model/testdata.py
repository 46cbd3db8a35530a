"""Test inputs: photographs preprocessed once, saved as `.npz` beside the export."""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from shared import atomic
from shared.records import write_json_atomic
from shared.tensors import load_samples, save_samples

from coordinator.model.dataset import Dataset
from coordinator.errors import UsageError
from coordinator.model.export import EXAMPLE_INPUTS, Artifact
from coordinator.report.sections import DataInfo

DEFAULT_IMAGES = Path(__file__).parent / "data" / "images"
PREPROCESS_FORMAT = 1  # bump when preprocessing changes


@dataclass
class TestData:
    inputs_path: Path
    reference_path: Path  # the PyTorch outputs for these inputs, once computed
    info: DataInfo  # the report's data section, less where the inputs are


def prepare(artifact: Artifact, images: Optional[Path], input_size: Tuple[int, int], cache: Path,
            dataset: Optional[Dataset] = None, device: str = "cpu", log: Any = print) -> TestData:
    folder = images or DEFAULT_IMAGES
    if dataset and _takes_images(artifact):
        _check_scored(artifact, dataset)
    files = dataset.files if dataset else image_files(folder)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + f.read_bytes())
    labels = [dataset.kind, dataset.labels, dataset.image_ids] if dataset else None
    given = artifact.dir / EXAMPLE_INPUTS  # a factory's --inputs: they are the test inputs
    if given.is_file():
        digest.update(given.read_bytes())
    digest.update(json.dumps([input_size, artifact.task, labels, PREPROCESS_FORMAT]).encode())
    # Keyed by the ONNX file too: the reference outputs saved here depend on the weights.
    data_dir = cache / "data" / f"{artifact.info.sha256[:16]}-{digest.hexdigest()[:16]}"
    inputs = data_dir / "inputs.npz"

    def make(tmp: str) -> None:
        out = Path(tmp)
        out.mkdir(mode=0o755)
        evaluation: Dict[str, Any] = {}
        if given.is_file():
            samples, how = load_samples(str(given)), "as given"
            source, listed = f"the model's example inputs (--inputs {artifact.info.example_inputs})", []
        elif _takes_images(artifact):
            samples, how, sizes = _preprocess(files, artifact, input_size)
            source = dataset.source if dataset else "shipped photographs (CC0 / public domain)" \
                if images is None else str(folder)
            if dataset:  # what scoring needs: labels, or ids and the factors back to image pixels
                h, w = input_size
                evaluation = {"kind": dataset.kind, "labels": dataset.labels, "image_ids": dataset.image_ids,
                              "scales": [[iw / w, ih / h] for iw, ih in sizes]}
                if dataset.ground_truth is not None:
                    write_json_atomic(str(out / "ground_truth.json"), dataset.ground_truth)
            listed = files
        else:
            samples, how = _random_inputs(artifact, len(files))
            source, listed = "seeded random tensors (the model does not take an RGB image)", []
        save_samples(str(out / inputs.name), samples)
        info = {"images": [str(f) for f in listed], "source": source, "count": len(samples), "preprocessing": how,
                "input_shapes": {k: list(v.shape) for k, v in samples[0].items()}, "evaluation": evaluation}
        write_json_atomic(str(out / "data.json"), info)

    # Made once, whole, and checked on every read (shared/atomic.py); reference outputs join it later.
    atomic.ensure(str(data_dir), make, "The cached test inputs", log=log, phase="inputs")
    info = DataInfo.from_dict(json.loads((data_dir / "data.json").read_text()))
    if images is not None and info.images:  # the same images may have come from another folder
        info.images, info.source = [str(f) for f in files], str(folder)
    return TestData(inputs, reference_file(data_dir, device), info)


_KINDS = {"coco": "a COCO-format annotation file", "imagefolder": "a folder of class folders"}


def _check_scored(artifact: Artifact, dataset: Dataset) -> None:
    """A dataset the model's family has no metric for fails before anything is run."""
    kinds = artifact.family.dataset_kinds
    if dataset.kind in kinds:
        return
    wanted = f"; give {' or '.join(_KINDS.get(k, k) for k in kinds)}" if kinds else " (its family has no task metric)"
    raise UsageError(f"--dataset {dataset.source} is {_KINDS.get(dataset.kind, dataset.kind)}, which a "
                     f"{artifact.task} model is not scored on{wanted}")


def reference_file(data_dir: Path, device: str) -> Path:
    """Where the PyTorch outputs on these inputs are kept: per device and torch version, since
    a CUDA reference (other kernels, other rounding) must never judge a later CPU run, and a
    new torch may compute differently."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch = version("torch")
    except PackageNotFoundError:
        torch = "none"
    return data_dir / f"reference-{device.replace(':', '')}-torch{torch}.npz"


def image_files(folder: Path, option: str = "--images") -> List[Path]:
    """The files of an image folder; checked before the (slow) export so bad input fails fast."""
    if not folder.is_dir():
        raise UsageError(f"{option}: not a folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise UsageError(f"{option}: no images in {folder}")
    for f in files:
        _load_rgb(f)
    return files


def _takes_images(artifact: Artifact) -> bool:
    """One float input shaped like a CHW image (detectors) or an NCHW batch, with 3 channels."""
    inputs = artifact.info.inputs
    if len(inputs) != 1 or inputs[0].dtype != "float":
        return False
    shape = inputs[0].shape
    return (len(shape) == 3 and shape[0] == 3) or (len(shape) == 4 and shape[1] == 3)


def _random_inputs(artifact: Artifact, count: int) -> Tuple[List[Dict[str, np.ndarray]], str]:
    """For models that take no image (an ONNX file given as is): seeded standard-normal tensors,
    dynamic dims set to 1."""
    rng = np.random.default_rng(0)
    dtypes = {"float": np.float32, "double": np.float64, "float16": np.float16, "int64": np.int64, "int32": np.int32,
              "bool": np.bool_}
    samples = []
    for _ in range(count):
        sample = {}
        for t in artifact.info.inputs:
            if t.dtype not in dtypes:
                raise UsageError(f"input {t.name!r} has type {t.dtype}, which e2e cannot make inputs for")
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in t.shape]
            if t.dtype == "bool":  # a mask: everything attended to
                sample[t.name] = np.ones(shape, dtype=bool)
            elif t.dtype.startswith("int"):  # ids: 0 and 1 are valid in any vocabulary or table
                sample[t.name] = rng.integers(0, 2, shape).astype(dtypes[t.dtype])
            else:
                sample[t.name] = rng.standard_normal(shape).astype(dtypes[t.dtype])
        samples.append(sample)
    return samples, "standard normal (integers 0 or 1, masks all true), seed 0, dynamic dims set to 1"


def _load_rgb(path: Path) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL's UnidentifiedImageError, an OSError; or, once Ultralytics has patched
        # Image.open (the yolo extra), a ModuleNotFoundError for its HEIF plugin: the file is no image
        raise UsageError(f"{path} is not a readable image ({e.__class__.__name__})") from None


def _preprocess(files: List[Path], artifact: Artifact,
                size: Tuple[int, int]) -> Tuple[List[Dict[str, np.ndarray]], str, List[Tuple[int, int]]]:
    """Each image as its model family prepares it, with the images' own sizes (w, h)."""
    name = artifact.input_names[0]
    if len(artifact.input_names) != 1:
        raise UsageError(f"the model has {len(artifact.input_names)} inputs; only single-image models "
                         "are supported so far")
    family = artifact.family
    samples, sizes = [], []
    for f in files:
        im = _load_rgb(f)
        sizes.append(im.size)
        samples.append({name: family.preprocess(im, size)})
    return samples, family.preprocessing(size), sizes
