"""Metrics for tinynet. Belongs to the evaluator: campaigns protect it."""

from __future__ import annotations

import json

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1: a rare class counts as much as a common one."""
    scores = []
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def nll(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y_true)), y_true], 1e-12, 1.0))))


def summary(y_true: np.ndarray, predicted: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """The campaign's three metrics, rounded as reported."""
    return {"accuracy": round(accuracy(y_true, predicted), 6),
            "macro_f1": round(macro_f1(y_true, predicted, n_classes), 6),
            "nll": round(nll(y_true, proba), 6)}


def report(result: dict, out: str) -> None:
    """Write ``result`` to the metrics file and print the lines the lab reads."""
    with open(out, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"split={result['split']} seed={result['seed']} macro_f1={result['macro_f1']:.4f} nll={result['nll']:.4f}")
    print(f"accuracy={result['accuracy']:.4f}")
