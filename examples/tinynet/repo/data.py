"""Data for tinynet: a fixed 4-class task, shipped as files.

    data/train.npz          training inputs and labels (x, y)
    data/val_inputs.npz     validation inputs (x)
    labels/val_labels.npz   validation labels (y): the scorer's alone
    heldout/...             the held-out split (inputs and labels), never in a trial's tree

The raw features come in wildly different units (some near 0.01, some near 100) and
the classes are imbalanced: leave-room-to-improve properties of the task, not bugs.
The files were drawn once by examples/tinynet/make_data.py, which is not part of this
repository: no code here can redraw the validation or held-out labels.

This file belongs to the evaluator: campaigns protect it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_CLASSES = 4
HERE = Path(__file__).resolve().parent
TRAIN_FILE = "data/train.npz"
VAL_INPUTS = "data/val_inputs.npz"
VAL_LABELS = "labels/val_labels.npz"
TEST_INPUTS = "heldout/test_inputs.npz"
TEST_LABELS = "heldout/test_labels.npz"


def _load(path: Path, key: str) -> np.ndarray:
    with np.load(path) as archive:
        return archive[key]


def load_train() -> tuple[np.ndarray, np.ndarray]:
    """(x_train, y_train)."""
    return _load(HERE / TRAIN_FILE, "x"), _load(HERE / TRAIN_FILE, "y")


def load_inputs(held_out_root: str | Path | None = None) -> np.ndarray:
    """The inputs to predict: validation, or the held-out test inputs under
    ``held_out_root`` (a directory laid out like this repository)."""
    if held_out_root:
        return _load(Path(held_out_root) / TEST_INPUTS, "x").astype(np.float64)
    return _load(HERE / VAL_INPUTS, "x")


def load_labels(root: str | Path, held_out: bool) -> np.ndarray:
    """The labels of the validation or held-out inputs under ``root``."""
    return _load(Path(root) / (TEST_LABELS if held_out else VAL_LABELS), "y").astype(np.int64)


def load_splits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val), for scripts that train and score in one process."""
    x_train, y_train = load_train()
    return x_train, y_train, load_inputs(), load_labels(HERE, held_out=False)


def load_test(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The held-out test split under ``root``."""
    return load_inputs(root), load_labels(root, held_out=True)
