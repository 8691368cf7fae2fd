"""tinynet's scorer: metrics from predictions and labels, never from trial code.

    python score.py [--seed N]

Reads $SOTALAB_PREDICTIONS/predictions.npz (``proba``) and model.npz, and the labels
under $SOTALAB_LABELS (validation, or the held-out test labels when $SOTALAB_SPLIT is
``held_out``). Prints ``accuracy=0.xxxx`` and writes metrics.json (accuracy, macro_f1,
nll, params counted from model.npz, split, seed). Imports nothing from the trial: only
this file, data.py and metrics.py, which the campaign protects.

This file belongs to the evaluator: campaigns protect it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import data
import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOTALAB_SEED", "0")))
    parser.add_argument("--out", default="metrics.json")
    args = parser.parse_args()
    predictions = Path(os.environ["SOTALAB_PREDICTIONS"])
    held_out = os.environ.get("SOTALAB_SPLIT") == "held_out"
    y = data.load_labels(os.environ["SOTALAB_LABELS"], held_out=held_out)
    with np.load(predictions / "predictions.npz", allow_pickle=False) as archive:
        proba = np.asarray(archive["proba"], dtype=np.float64)
    if proba.shape != (len(y), data.N_CLASSES) or not np.all(np.isfinite(proba)):
        sys.exit(f"predictions have shape {proba.shape}, expected ({len(y)}, {data.N_CLASSES}) finite values")
    proba = np.clip(proba, 0.0, None)
    proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-12)
    with np.load(predictions / "model.npz", allow_pickle=False) as archive:
        params = int(sum(archive[name].size for name in archive.files))
    predicted = proba.argmax(axis=1)
    result = {
        **metrics.summary(y, predicted, proba, data.N_CLASSES),
        "params": params,
        "split": "test" if held_out else "validation",
        "seed": args.seed,
    }
    metrics.report(result, args.out)

if __name__ == "__main__":
    main()
