"""Train `model.py`'s CNN on scikit-learn's bundled digits (no download) and write what the repo
keeps: the weights (`digits_cnn.pt`), a held-out image folder (`heldout/<digit>/*.png`, the
class-folder layout `--dataset` reads) and a few training images for int8 to calibrate on
(`calibration/*.png`, for `--calibration`: not the images it is scored on).

    pip install scikit-learn   # only to retrain
    python -m examples.digits.train   # from the clone's root

The 8x8 digits become 32x32 RGB PNGs, and every image, in training as in the held-out folder,
goes through e2e's own preprocessing at 32x32 (`coordinator.tasks`), so that the top-1 an
engine gets on the folder is the model's real top-1. Seeded; a few seconds on a CPU.
"""
import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from coordinator import tasks
from examples.digits.model import SIZE, WEIGHTS, DigitsCNN

HERE = Path(__file__).parent
SEED = 0


def to_image(digit: np.ndarray) -> Image.Image:
    """An 8x8 digit (0..16, ink high) as a 32x32 RGB image, dark ink on white as on paper."""
    grey = Image.fromarray(np.uint8(255 - np.round(digit * 255 / 16)), "L")
    return grey.resize((SIZE, SIZE), Image.BILINEAR).convert("RGB")


def model_inputs(images: list) -> torch.Tensor:
    """What e2e feeds every engine for these images at --input-size 32x32."""
    family = tasks.get(tasks.FALLBACK)  # a factory's classifier is a flat export: the generic family
    return torch.from_numpy(np.concatenate([family.preprocess(im, (SIZE, SIZE)) for im in images]))


def first_per_class(index: np.ndarray, target: np.ndarray, n: int) -> list:
    """The first `n` samples of each digit among `index`, in index order."""
    return [i for digit in range(10) for i in sorted(index[target[index] == digit])[:n]]


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def train(x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    net = DigitsCNN()
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=epochs * -(-len(x) // 64))
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(x), generator=generator).split(64):
            # a shift of up to 2 pixels: handwriting is not centred exactly alike
            dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
            loss = nn.functional.cross_entropy(net(torch.roll(x[batch], (dy, dx), (2, 3))), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--per-class", type=int, default=20, help="held-out images per digit written to heldout/")
    parser.add_argument("--calibration-per-class", type=int, default=5,
                        help="training images per digit written to calibration/")
    args = parser.parse_args()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # small convolutions: one thread is faster, and it is the same run each time
    digits = load_digits()
    index = np.arange(len(digits.target))
    train_idx, test_idx = train_test_split(index, test_size=0.25, stratify=digits.target, random_state=SEED)
    images = [to_image(d) for d in digits.images]
    x, y = model_inputs(images), torch.from_numpy(digits.target).long()
    start = time.perf_counter()
    net = train(x[train_idx], y[train_idx], args.epochs)
    print(f"trained on {len(train_idx)} digits in {time.perf_counter() - start:.1f} s; "
          f"held-out top-1 {accuracy(net, x[test_idx], y[test_idx]):.4f} on {len(test_idx)}")
    torch.save(net.state_dict(), WEIGHTS)

    folder, calibration = HERE / "heldout", HERE / "calibration"
    for f in (folder, calibration):
        shutil.rmtree(f, ignore_errors=True)
    kept = first_per_class(test_idx, digits.target, args.per_class)
    for i in kept:
        path = folder / str(digits.target[i]) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        images[i].save(path, optimize=True)
    calibration.mkdir()
    for i in first_per_class(train_idx, digits.target, args.calibration_per_class):
        images[i].save(calibration / f"{i:04d}.png", optimize=True)
    kept_x = model_inputs([Image.open(folder / str(digits.target[i]) / f"{i:04d}.png").convert("RGB") for i in kept])
    print(f"wrote {WEIGHTS.name} ({WEIGHTS.stat().st_size // 1024} KiB), {len(kept)} held-out PNGs to "
          f"{folder.relative_to(HERE.parent.parent)}/ (top-1 on them, read back: {accuracy(net, kept_x, y[kept]):.4f}) "
          f"and {len(list(calibration.iterdir()))} training PNGs to {calibration.relative_to(HERE.parent.parent)}/")


if __name__ == "__main__":
    main()
