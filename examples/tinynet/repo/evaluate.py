"""The tinynet evaluator in one process: train with a seed, score on validation (or the held-out test).

    python evaluate.py [--seed N]

The paper's own script: it trains and scores in one interpreter, so a campaign that uses
it runs at the in_process integrity level (predict.py + score.py are the isolated pair).
The seed comes from --seed, else $SOTALAB_SEED, else 0. The score is measured on the
validation split, unless $SOTALAB_HELD_OUT names a directory holding the held-out
files laid out as in this repository (heldout/test_*.npz; the lab mounts it only for
the final evaluation). Prints
`accuracy=0.xxxx` and writes metrics.json (accuracy, macro_f1, nll, params, split).

This file belongs to the evaluator: campaigns protect it.
"""

from __future__ import annotations

import argparse
import os
import time

import data
import metrics
import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOTALAB_SEED", "0")))
    parser.add_argument("--out", default="metrics.json")
    args = parser.parse_args()

    x_train, y_train, x_val, y_val = data.load_splits()
    started = time.perf_counter()
    model = train.fit(x_train, y_train, seed=args.seed, n_classes=data.N_CLASSES)
    train_s = time.perf_counter() - started

    held_out = os.environ.get("SOTALAB_HELD_OUT")
    if held_out:
        x_eval, y_eval = data.load_test(held_out)
        split = "test"
    else:
        x_eval, y_eval, split = x_val, y_val, "validation"
    proba = model.predict_proba(x_eval)
    predicted = proba.argmax(axis=1)
    result = {
        **metrics.summary(y_eval, predicted, proba, data.N_CLASSES),
        "params": int(model.n_params),
        "train_seconds": round(train_s, 3),
        "split": split,
        "seed": args.seed,
    }
    metrics.report(result, args.out)

if __name__ == "__main__":
    main()
