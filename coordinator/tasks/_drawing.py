"""What the families' pictures share: the input image back as RGB, a class palette, PNG out."""
import base64
import io
from typing import Any

import numpy as np

from coordinator.tasks import IMAGENET_MEAN, IMAGENET_STD


def rgb(chw: np.ndarray, normalised: bool) -> np.ndarray:
    """A CHW float image (batch axis dropped) as HxWx3 uint8; `normalised`: ImageNet mean/std."""
    x = chw[0] if chw.ndim == 4 else chw
    x = x.transpose(1, 2, 0)
    if normalised:
        x = x * IMAGENET_STD + IMAGENET_MEAN
    return (np.clip(x, 0, 1) * 255).astype("uint8")


def palette(n: int) -> np.ndarray:
    """n distinct colours (n x 3 uint8), the same for every engine so pictures compare by eye."""
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 256, size=(max(n, 1), 3)).astype("uint8")
    colours[0] = 0  # class 0 is background in torchvision's segmenters
    return colours


def png(picture: Any) -> str:
    """A PIL image as base64 PNG."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()
