"""Data for tinynet: a synthetic, deterministic 4-class problem.

The "world" (class centres, a nonlinear twist, and the raw feature scales) is fixed by
WORLD_SEED, so every checkout sees the same task. Train and validation come from one
fixed draw and one fixed split; the held-out test split is a separate draw stored in
heldout/test.npz, which ordinary trials never see.

The raw features come in wildly different units (some near 0.01, some near 100) and
the classes are imbalanced: leave-room-to-improve properties of the task, not bugs.

This file belongs to the evaluator: campaigns protect it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

WORLD_SEED = 20240611
TRAINVAL_SEED = 7
HELDOUT_SEED = 99
N_FEATURES = 10
N_CLASSES = 4
CLASS_PRIORS = (0.45, 0.30, 0.15, 0.10)
N_TRAINVAL = 3000
N_TEST = 1500
VAL_FRACTION = 0.25
TEST_FILE = "heldout/test.npz"


def _world():
    rng = np.random.default_rng(WORLD_SEED)
    centres = rng.normal(0.0, 1.1, size=(N_CLASSES, N_FEATURES))
    mixing = rng.normal(0.0, 1.0, size=(N_FEATURES, N_FEATURES)) / np.sqrt(N_FEATURES)
    scales = 10.0 ** rng.uniform(-1.0, 1.0, size=N_FEATURES)
    offsets = rng.normal(0.0, 6.0, size=N_FEATURES) * scales
    return centres, mixing, scales, offsets


def sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n labelled examples in raw (unnormalised) units."""
    centres, mixing, scales, offsets = _world()
    rng = np.random.default_rng(seed)
    y = rng.choice(N_CLASSES, size=n, p=CLASS_PRIORS)
    latent = centres[y] + rng.normal(0.0, 1.0, size=(n, N_FEATURES))
    # A mild nonlinearity: a linear model does well, not perfectly.
    latent = latent + 0.5 * np.tanh(latent @ mixing)
    return (latent * scales + offsets).astype(np.float64), y.astype(np.int64)


def load_splits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): one fixed draw, one fixed split."""
    x, y = sample(N_TRAINVAL, TRAINVAL_SEED)
    order = np.random.default_rng(TRAINVAL_SEED + 1).permutation(len(y))
    n_val = int(round(VAL_FRACTION * len(y)))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def load_test(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test split under ``root``, a directory laid out like this repository
    (the lab mounts its held-out copy as $SOTALAB_HELD_OUT only for the final evaluation)."""
    with np.load(Path(root) / TEST_FILE) as archive:
        return archive["x"], archive["y"]


def write_test(path: str | Path) -> None:
    x, y = sample(N_TEST, HELDOUT_SEED)
    np.savez_compressed(path, x=x.astype(np.float32), y=y.astype(np.int8))


if __name__ == "__main__":
    # Regenerate the held-out split: python data.py [path, default heldout/test.npz]
    write_test(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / TEST_FILE)
