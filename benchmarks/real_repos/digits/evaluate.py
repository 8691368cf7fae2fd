"""sotalab's evaluator for the scikit-learn digits MLP (scripts/run_digits_mlp.py),
brought by the campaign's overlay.

The repository's script mixes training, cross-validation, plots and a test score in one
main(). This script takes only the model (build_clf, what a trial may change), fits it on
the script's own training split and prints the accuracy on its test split, which the
campaign uses as validation.
"""

import os
import sys

from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))

import run_digits_mlp  # noqa: E402

X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=run_digits_mlp.RNG)
clf = run_digits_mlp.build_clf().fit(Xtr, ytr)
print(f"accuracy={accuracy_score(yte, clf.predict(Xte)):.5f}")
