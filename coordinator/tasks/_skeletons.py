"""The keypoint family's picture (keypoints.py): each confident person's COCO skeleton, in its own
colour, over the input image. A helper, not a family (the `_` keeps tasks/__init__.py's scan off it).
"""
import numpy as np

from shared.tensors import Sample

from coordinator.tasks import _drawing

# COCO's limbs, as pairs of keypoint indices
SKELETON = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
            (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]


def draw(chw: np.ndarray, outputs: Sample, min_score: float, most: int) -> str:
    """A base64 PNG of the `most` highest-scoring persons at `min_score` or above over the CHW image."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(_drawing.rgb(chw, normalised=False))
    draw = ImageDraw.Draw(picture)
    colours = _drawing.palette(most + 1)[1:]
    shown = [i for i in np.argsort(-outputs["scores"])[:most] if outputs["scores"][i] >= min_score]
    for colour, i in zip(colours, shown):
        points = [(float(x), float(y)) for x, y, _ in outputs["keypoints"][i]]
        fill = tuple(int(c) for c in colour)
        for a, b in SKELETON:
            draw.line([points[a], points[b]], fill=fill, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=fill)
    return _drawing.png(picture)
