"""tinynet: a one-hidden-layer MLP in numpy, trained with minibatch SGD.

This is the research code a campaign improves. The defaults are deliberately plain:
features go in raw (no normalisation) and the learning rate is a guess.
"""

from __future__ import annotations

import numpy as np

HIDDEN = 32
LEARNING_RATE = 0.002
EPOCHS = 15
BATCH_SIZE = 64
WEIGHT_DECAY = 1e-4
# The paper balances the classes (each class weighs the same in the loss), which is
# what keeps macro-F1 up on the rare classes.
CLASS_WEIGHTING = "balanced"


class Model:
    def __init__(self, n_features: int, n_classes: int, hidden: int, rng: np.random.Generator):
        self.w1 = rng.normal(0.0, 1.0 / np.sqrt(n_features), size=(n_features, hidden))
        self.b1 = np.zeros(hidden)
        self.w2 = rng.normal(0.0, 1.0 / np.sqrt(hidden), size=(hidden, n_classes))
        self.b2 = np.zeros(n_classes)

    @property
    def n_params(self) -> int:
        return sum(p.size for p in (self.w1, self.b1, self.w2, self.b2))

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Feature preprocessing applied before the network (none by default)."""
        return x

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = np.tanh(self.prepare(x) @ self.w1 + self.b1)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return hidden, proba / proba.sum(axis=1, keepdims=True)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)


def sample_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-example loss weights, normalised to mean 1."""
    if CLASS_WEIGHTING != "balanced":
        return np.ones(len(y))
    per_class = 1.0 / (np.bincount(y, minlength=n_classes) / len(y))
    return per_class[y] / per_class[y].mean()


def fit(x: np.ndarray, y: np.ndarray, seed: int, n_classes: int) -> Model:
    """Train a Model on (x, y); ``seed`` drives initialisation and batch order."""
    rng = np.random.default_rng(seed)
    model = Model(x.shape[1], n_classes, HIDDEN, rng)
    onehot = np.eye(n_classes)[y]
    weights = sample_weights(y, n_classes)
    for _ in range(EPOCHS):
        order = rng.permutation(len(y))
        for start in range(0, len(y), BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            xb, tb = model.prepare(x[batch]), onehot[batch]
            hidden, proba = model.forward(x[batch])
            grad_logits = (proba - tb) * weights[batch, None] / len(batch)
            grad_hidden = (grad_logits @ model.w2.T) * (1.0 - hidden ** 2)
            model.w2 -= LEARNING_RATE * (hidden.T @ grad_logits + WEIGHT_DECAY * model.w2)
            model.b2 -= LEARNING_RATE * grad_logits.sum(axis=0)
            model.w1 -= LEARNING_RATE * (xb.T @ grad_hidden + WEIGHT_DECAY * model.w1)
            model.b1 -= LEARNING_RATE * grad_hidden.sum(axis=0)
    return model
