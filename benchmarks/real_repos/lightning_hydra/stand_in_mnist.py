"""A stand-in for MNIST in MNIST's own files, for a machine without network.

ashleve/lightning-hydra-template's datamodule calls torchvision's ``MNIST(data_dir,
download=True)``, which downloads unless ``<data_dir>/MNIST/raw`` already holds the four
uncompressed idx files. Runs have no network, so the campaign's overlay brings those files.
The real ones (47 MB of training images) are over the overlay's 2 MB per file and are not
on this machine; these are drawn here with numpy alone: a 5x7 glyph per digit, scaled,
thickened at random, placed at a random offset in 28x28 and noised. 2000 training and
500 test images, seeded, so every run of the benchmark brings the same bytes.

    python stand_in_mnist.py OUT_DIR
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

GLYPHS = {
    0: ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    1: ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    2: ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    3: ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
    4: ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    5: ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    6: ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    7: ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    8: ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    9: ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
}
SIZES = {"train": 2000, "t10k": 500}


def draw(label: int, rng: np.random.Generator) -> np.ndarray:
    glyph = np.array([[int(c) for c in row] for row in GLYPHS[label]], dtype=float)
    big = np.kron(glyph, np.ones((3, 3)))  # 21 x 15
    if rng.random() < 0.5:  # a thicker stroke
        big = np.maximum(big, np.roll(big, 1, axis=1))
    image = np.zeros((28, 28))
    row, col = rng.integers(0, 8), rng.integers(0, 14)
    image[row:row + 21, col:col + 15] = big * rng.uniform(160, 255)
    image += rng.normal(0, 40, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write(out: Path, seed: int = 0) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for part, n in SIZES.items():
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.stack([draw(int(label), rng) for label in labels])
        (out / f"{part}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (out / f"{part}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    return out


if __name__ == "__main__":
    write(Path(sys.argv[1]))
