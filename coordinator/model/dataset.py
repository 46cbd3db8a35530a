"""Labelled data for task accuracy: a COCO-format annotation file (detection) or an
ImageNet-style folder of class folders (classification)."""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from coordinator.errors import UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class Dataset:
    kind: str  # "coco" or "imagefolder"
    source: str
    files: List[Path]
    image_ids: List[int] = field(default_factory=list)  # coco: the annotation file's ids, in file order
    labels: List[int] = field(default_factory=list)  # imagefolder: class index (sorted folder names)
    ground_truth: Optional[Dict[str, Any]] = None  # coco: restricted to `files`


def load(path: Path, limit: Optional[int] = None) -> Dataset:
    """`annotations.json` (images beside it or in `images/`), a folder holding
    `annotations.json`, or a folder of class folders."""
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    if path.is_dir() and (path / "annotations.json").is_file():
        path = path / "annotations.json"
    if path.is_file():
        return _coco(path, limit)
    if path.is_dir():
        return _image_folder(path, limit)
    raise UsageError(f"--dataset: no such file or folder: {path}")


def _coco(path: Path, limit: Optional[int]) -> Dataset:
    try:
        gt = json.loads(path.read_text())
        missing = [k for k in ("images", "annotations", "categories") if k not in gt]
        if missing:
            raise KeyError(", ".join(missing))
        images = sorted(gt["images"], key=lambda i: i["id"])[:limit]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--dataset: {path} is not a COCO-format annotation file ({e!r})") from None
    files = []
    for image in images:
        candidates = [path.parent / image["file_name"], path.parent / "images" / image["file_name"]]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise UsageError(f"--dataset: image {image['file_name']} of {path} not found beside it or in images/")
        files.append(found)
    ids = {i["id"] for i in images}
    subset = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
    return Dataset("coco", str(path), files, image_ids=[i["id"] for i in images], ground_truth=subset)


def _image_folder(path: Path, limit: Optional[int]) -> Dataset:
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    items = [(f, index) for index, name in enumerate(classes) for f in sorted((path / name).iterdir())
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise UsageError(f"--dataset: {path} holds neither annotations.json nor class folders of images")
    items = items[:limit]
    return Dataset("imagefolder", str(path), [f for f, _ in items], labels=[label for _, label in items])
