"""sotalab's evaluator for makemore (bigram edition), brought by the campaign's overlay.

The repository has no evaluator and no split. The campaign's data split leaves the
training names in names.txt, puts validation names in splits/val.txt and keeps the
held-out names in the lab home. This script trains the repository's own model on
names.txt and prints the mean negative log-likelihood per character of the validation
names, or, in the final held-out evaluation ($SOTALAB_SPLIT=held_out), of the held-out
names the server mounts under $SOTALAB_HELD_OUT.
"""

import os
import sys

sys.path.insert(0, os.getcwd())  # the trial's code, run from the export's root

import makemore  # noqa: E402



def words(path):
    """Read here, not through the trial's code: trial code that reads evaluation data is
    an audit finding."""
    with open(path) as f:
        return [w.strip() for w in f if w.strip()]


if os.environ.get("SOTALAB_SPLIT") == "held_out":
    names = os.path.join(os.environ["SOTALAB_HELD_OUT"], "splits", "test.txt")
else:
    names = os.path.join("splits", "val.txt")
model = makemore.train(words("names.txt"))
print(f"val_loss={model.loss(words(names)):.5f}")
