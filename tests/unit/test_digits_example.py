"""examples/digits: the committed weights and held-out folder belong together, and the factory
says which input size it takes (no engine needed)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coordinator.model import dataset
from coordinator import tasks
from examples.digits.model import SIZE, digits_cnn

HELDOUT = Path(__file__).resolve().parents[2] / "examples" / "digits" / "heldout"


def test_the_trained_weights_score_on_the_committed_heldout_folder():
    data = dataset.load(HELDOUT)
    assert data.kind == "imagefolder" and len(data.files) == 200 and sorted(set(data.labels)) == list(range(10))
    family = tasks.get(tasks.FALLBACK)  # what e2e makes of a factory's classifier
    x = torch.from_numpy(np.concatenate([family.preprocess(Image.open(f).convert("RGB"), (SIZE, SIZE)) for f in data.files]))
    with torch.no_grad():
        top1 = float((digits_cnn()(x).argmax(1) == torch.tensor(data.labels)).float().mean())
    assert top1 > 0.95  # 0.99 when trained


def test_another_input_size_is_refused_with_the_option_to_pass():
    with pytest.raises(ValueError, match="--input-size 32x32"):
        digits_cnn()(torch.zeros(1, 3, 224, 224))
