"""tinynet's predict step: train with a seed, predict class probabilities.

    python predict.py [--seed N]

Trains ``train.fit`` on the training split and writes, into $SOTALAB_OUTPUT_DIR (else
``out/``): ``predictions.npz`` (``proba``: one row per input) and ``model.npz`` (every
parameter array of the model, which the scorer counts). The inputs are the validation
inputs, or the held-out inputs when $SOTALAB_HELD_OUT names a directory holding them.
This step never sees a label of the split it predicts.

This file belongs to the evaluator: campaigns protect it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import data
import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOTALAB_SEED", "0")))
    args = parser.parse_args()
    out = Path(os.environ.get("SOTALAB_OUTPUT_DIR", "out"))
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = data.load_train()
    model = train.fit(x_train, y_train, seed=args.seed, n_classes=data.N_CLASSES)
    proba = model.predict_proba(data.load_inputs(os.environ.get("SOTALAB_HELD_OUT")))
    np.savez(out / "predictions.npz", proba=proba)
    np.savez(out / "model.npz", **{k: v for k, v in vars(model).items() if isinstance(v, np.ndarray)})
    print(f"seed={args.seed} predicted {len(proba)} inputs")


if __name__ == "__main__":
    main()
