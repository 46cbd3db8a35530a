"""A small CNN trained on scikit-learn's digits by `train.py` beside it, with its weights in the
repo: a real classifier for e2e's accuracy axis (top-1 per engine and precision).

    PYTHONPATH=. e2e bench --model examples.digits.model:digits_cnn --input-size 32x32 \
        --dataset examples/digits/heldout --engines torch,ort,openvino --precision fp32,bf16,int8

It takes what e2e makes of an image at 32x32 (shorter side to 37, centre crop, ImageNet mean/std,
NCHW) and returns the 10 digits' logits.
"""
from pathlib import Path

import torch
from torch import nn

WEIGHTS = Path(__file__).with_name("digits_cnn.pt")
SIZE = 32  # --input-size 32x32: the size it was trained at


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.features = nn.Sequential(block(3, 8), nn.MaxPool2d(2), block(8, 16), nn.MaxPool2d(2),
                                      block(16, 32), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 4 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (SIZE, SIZE):  # any other size would run and be wrong
            raise ValueError(f"digits_cnn takes {SIZE}x{SIZE} images, not {x.shape[-2]}x{x.shape[-1]}: "
                             f"pass --input-size {SIZE}x{SIZE}")
        return self.classifier(self.features(x))


def digits_cnn() -> nn.Module:
    """The trained network: its own weights, loaded here (e2e's default `--weights` keeps them)."""
    net = DigitsCNN()
    net.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return net.eval()
