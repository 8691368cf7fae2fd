"""Regenerate repo/'s data files: the tinynet task, drawn once, split once.

    python examples/tinynet/make_data.py

The generator lives here, outside the research repository, on purpose: with the world's
seeds in the repository, trial code could redraw the validation labels or the held-out
split. The repository ships the draws as files instead, and the campaign seals the
label files (labels/**, heldout/test_labels.npz) so only the scorer ever reads them.

The "world" (class centres, a nonlinear twist, raw feature scales 100x apart) and the
class priors leave room to improve: features come unnormalised and classes imbalanced.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent / "repo"
WORLD_SEED = 20240611
TRAINVAL_SEED = 7
HELDOUT_SEED = 99
N_FEATURES = 10
N_CLASSES = 4
CLASS_PRIORS = (0.45, 0.30, 0.15, 0.10)
N_TRAINVAL = 3000
N_TEST = 1500
VAL_FRACTION = 0.25


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
    latent = latent + 0.5 * np.tanh(latent @ mixing)  # a linear model does well, not perfectly
    return (latent * scales + offsets).astype(np.float64), y.astype(np.int64)


def main() -> None:
    x, y = sample(N_TRAINVAL, TRAINVAL_SEED)
    order = np.random.default_rng(TRAINVAL_SEED + 1).permutation(len(y))
    n_val = int(round(VAL_FRACTION * len(y)))
    val, train = order[:n_val], order[n_val:]
    for folder in ("data", "labels", "heldout"):
        (REPO / folder).mkdir(exist_ok=True)
    np.savez_compressed(REPO / "data" / "train.npz", x=x[train], y=y[train])
    np.savez_compressed(REPO / "data" / "val_inputs.npz", x=x[val])
    np.savez_compressed(REPO / "labels" / "val_labels.npz", y=y[val])
    x_test, y_test = sample(N_TEST, HELDOUT_SEED)
    np.savez_compressed(REPO / "heldout" / "test_inputs.npz", x=x_test.astype(np.float32))
    np.savez_compressed(REPO / "heldout" / "test_labels.npz", y=y_test.astype(np.int8))


if __name__ == "__main__":
    main()
