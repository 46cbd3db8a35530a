"""The model zoo and model sources: a registry name, `package.module:factory`, or an ONNX file.

Only `build()` imports torch, so listing models and reading ONNX files stays light.
"""
import hashlib
import socket
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from shared import torch_model
from shared.errors import one_line

from coordinator.model import example_inputs
from coordinator.errors import UsageError
from coordinator.model.user_code import calling, extra_hint, top_spec


@dataclass(frozen=True)
class ModelDef:
    name: str
    factory: str  # "package.module:function"
    task: str  # a model family in coordinator/tasks/; "" for a factory: guessed from its output
    input_size: Tuple[int, int]  # H, W of the test inputs
    kwargs: Dict[str, Any] = field(default_factory=dict)  # passed with weights=None
    inputs: str = ""  # a factory's example inputs (--inputs): package.module:function or a file
    exporter: str = "auto"  # --exporter: the chain of coordinator/model/exporters.py, or one of them only
    note: str = ""  # what the report must say of the model (a zoo model that is not what its name suggests)

    @property
    def torchvision_name(self) -> Optional[str]:
        module, _, fn = self.factory.partition(":")
        return fn if module.startswith("torchvision.models") else None


def _det(name: str, fn: str, size: Tuple[int, int] = (480, 640), task: str = "detection") -> ModelDef:
    return ModelDef(name, f"torchvision.models.detection:{fn}", task, size, {"weights_backbone": None})


def _cls(name: str, fn: str) -> ModelDef:
    return ModelDef(name, f"torchvision.models:{fn}", "classification", (224, 224))


def _seg(name: str, fn: str, aux: bool) -> ModelDef:
    # aux: the pretrained weights carry the auxiliary head, so the model is built with it to load them
    kwargs = {"weights_backbone": None, **({"aux_loss": True} if aux else {})}
    return ModelDef(name, f"torchvision.models.segmentation:{fn}", "semantic_segmentation", (520, 520), kwargs)


REGISTRY: Dict[str, ModelDef] = {m.name: m for m in (
    _det("faster_rcnn", "fasterrcnn_resnet50_fpn"),
    _det("faster_rcnn_v2", "fasterrcnn_resnet50_fpn_v2"),
    _det("retinanet", "retinanet_resnet50_fpn"),
    _det("fcos", "fcos_resnet50_fpn"),
    _det("faster_rcnn_mobilenet", "fasterrcnn_mobilenet_v3_large_320_fpn", (320, 320)),
    _det("ssdlite", "ssdlite320_mobilenet_v3_large", (320, 320)),
    _det("maskrcnn", "maskrcnn_resnet50_fpn", task="instance_segmentation"),
    _det("maskrcnn_v2", "maskrcnn_resnet50_fpn_v2", task="instance_segmentation"),
    _det("keypointrcnn", "keypointrcnn_resnet50_fpn", task="keypoints"),
    _seg("deeplabv3", "deeplabv3_resnet50", aux=True),
    _seg("fcn", "fcn_resnet50", aux=True),
    _seg("lraspp", "lraspp_mobilenet_v3_large", aux=False),
    # Ultralytics' network from its YAML, seeded random weights (--weights PATH for a state dict)
    *(ModelDef(n, "ultralytics.nn.tasks:DetectionModel", "yolo", (640, 640), {"cfg": f"{n}.yaml", "verbose": False})
      for n in ("yolov8n", "yolo11n")),
    # cfg/models/v5/yolov5.yaml at scale n: Ultralytics' YOLOv5 backbone with its v8 head, same host pre/post
    ModelDef("yolov5n", "ultralytics.nn.tasks:DetectionModel", "yolo", (640, 640),
             {"cfg": "yolov5n.yaml", "verbose": False},
             note="yolov5n is Ultralytics' YOLOv5u (cfg/models/v5/yolov5.yaml, scale n): the YOLOv5 backbone with "
                  "the anchor-free head of YOLOv8, not the original anchor-based YOLOv5"),
    _cls("resnet18", "resnet18"),
    _cls("resnet50", "resnet50"),
    _cls("mobilenet_v3_large", "mobilenet_v3_large"),
    _cls("efficientnet_b0", "efficientnet_b0"),
)}


@dataclass(frozen=True)
class ModelSource:
    """What the user asked for, resolved: a model definition, or an ONNX file."""

    model: Optional[ModelDef] = None
    onnx_path: Optional[Path] = None

    @property
    def name(self) -> str:
        return self.model.name if self.model else self.onnx_path.stem  # type: ignore[union-attr]


def model_name(spec: str) -> str:
    """The name a model request goes by (run directories, the report), without resolving it."""
    if spec.endswith(".onnx"):
        return Path(spec).stem
    return spec if spec in REGISTRY else spec.replace(":", ".")


def resolve(spec: str, input_size: Optional[Tuple[int, int]] = None, inputs: Optional[str] = None,
            exporter: str = "auto") -> ModelSource:
    """`faster_rcnn`, `path/to/model.onnx`, or `package.module:factory` (with `inputs`, its
    example inputs); exported with `exporter`."""
    if exporter != "auto" and spec.endswith(".onnx"):
        raise UsageError(f"--exporter {exporter}: {spec} is already ONNX; --exporter is for a model e2e exports")
    if inputs and (spec.endswith(".onnx") or spec in REGISTRY):
        raise UsageError("--inputs gives the example inputs of a model factory (--model package.module:factory); "
                         f"{spec} takes {'its own' if spec.endswith('.onnx') else 'images'}")
    if spec.endswith(".onnx"):
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"ONNX file not found: {spec}")
        return ModelSource(onnx_path=path)
    if spec in REGISTRY:
        model = REGISTRY[spec]
    elif ":" in spec:
        model = ModelDef(model_name(spec), spec, task="", input_size=(224, 224))
    else:
        raise UsageError(f"unknown model {spec!r}; valid: {', '.join(REGISTRY)}, "
                         "a path ending in .onnx, or package.module:factory")
    if input_size:
        model = replace(model, input_size=input_size)
    if inputs:
        example_inputs.check(inputs)
        model = replace(model, inputs=inputs)
    if exporter != "auto":
        model = replace(model, exporter=exporter)
    return ModelSource(model=model)


@dataclass
class Weights:
    """Which weights a model got, said plainly in the report."""

    kind: str  # "pretrained", "checkpoint" or "random"
    detail: str  # weights enum, checkpoint path + sha256, or the seed
    state_dict: Any = None  # None: the factory's own initialisation (after seeding)
    warning: str = ""

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.detail}"


def load_weights(model: ModelDef, weights: str, seed: int) -> Weights:
    """`pretrained` (falls back to seeded random weights, loudly), `random`, or a checkpoint path."""
    if weights == "random":
        return Weights("random", f"seed={seed}")
    if weights != "pretrained":
        return _checkpoint(Path(weights))
    if model.torchvision_name is None:
        return Weights("factory", "the factory's own weights")
    import torchvision

    enum = torchvision.models.get_model_weights(model.torchvision_name).DEFAULT
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # an unreachable hub must not stall the run
    try:
        state = enum.get_state_dict(progress=False, check_hash=True)
    except Exception as e:
        reason = one_line(e, 200)
        return Weights("random", f"seed={seed}", warning=(
            f"pretrained weights {enum} could not be had ({reason}); using seeded random weights "
            "instead: speed figures stay valid, task accuracy is meaningless. Put the file in "
            "$TORCH_HOME/hub/checkpoints or pass --weights PATH"))
    finally:
        socket.setdefaulttimeout(old)
    return Weights("pretrained", str(enum), state_dict=state)


def check_weights(weights: str) -> None:
    """--weights names 'pretrained', 'random' or a checkpoint file that exists."""
    if weights not in ("pretrained", "random") and not Path(weights).is_file():
        raise UsageError(f"--weights: no such checkpoint file: {weights} (or use 'pretrained' / 'random')")


def _checkpoint(path: Path) -> Weights:
    check_weights(str(path))
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(f"--weights: cannot read {path} as a PyTorch state dict: {e}") from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Weights("checkpoint", f"{path} sha256={digest[:16]}", state_dict=data)


def build(model: ModelDef, weights: Weights, seed: int) -> Any:
    """The eval-mode torch module with the given weights."""
    import torch

    module_name, _, attr = model.factory.partition(":")
    with calling(f"importing the model factory's module {module_name}", module_name):
        try:
            factory = getattr(torch_model.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise UsageError(f"cannot import model factory {model.factory}: {e}{extra_hint(e)}") from None
    torch.manual_seed(seed)
    kwargs = factory_kwargs(model)
    with warnings.catch_warnings(), torch_model.pil_kept(), calling(f"the model factory {model.factory}", module_name):
        warnings.simplefilter("ignore")
        net = factory(**kwargs)
    if not isinstance(net, torch.nn.Module):
        raise UsageError(f"the model factory {model.factory} returned a {type(net).__name__}, not a torch.nn.Module")
    if weights.state_dict is not None:
        try:
            net.load_state_dict(weights.state_dict)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise UsageError(f"the weights do not fit {model.name}: {first}") from None
    return net.eval()


def factory_root(model: ModelDef) -> Optional[str]:
    """The folder to put on a runner's path to import the factory's module, for a module of the
    user's own (a checkout, the working directory); None for an installed package, which each
    runner environment brings at its own pinned version. Found without importing the module (its
    top-level package only located), so a warm rerun stays free of torch."""
    spec = top_spec(model.factory.partition(":")[0])
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        path = Path(spec.origin).resolve()
        root = path.parent.parent if path.name == "__init__.py" else path.parent
    elif spec.submodule_search_locations:  # a namespace package
        root = Path(list(spec.submodule_search_locations)[0]).resolve().parent
    else:
        return None
    return None if {"site-packages", "dist-packages"} & set(root.parts) else str(root)


def factory_kwargs(model: ModelDef) -> Dict[str, Any]:
    """Registry models are built without weights (they are loaded afterwards)."""
    return {"weights": None, **model.kwargs} if model.torchvision_name else dict(model.kwargs)
