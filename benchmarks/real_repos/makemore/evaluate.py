"""sotalab's evaluator for karpathy/makemore, brought by the campaign's overlay.

makemore has no evaluator and splits its data itself at random on every run. The
campaign's data split leaves the training names in names.txt and puts validation names
in splits/val.txt (held-out names stay in the lab home). This script trains the
repository's own Transformer (ModelConfig defaults: what a trial may change) for a fixed
budget of steps with makemore's optimiser settings, and prints the mean loss per
character on the validation names, or on the held-out names in the final evaluation.
"""

import os
import sys

import torch

sys.path.insert(0, os.getcwd())  # the trial's code, run from the export's root

import makemore as mm  # noqa: E402

STEPS = 200
torch.manual_seed(int(os.environ.get("SOTALAB_SEED", "0")))


def words(path):
    with open(path) as f:
        return [w.strip() for w in f if w.strip()]


if os.environ.get("SOTALAB_SPLIT") == "held_out":
    eval_path = os.path.join(os.environ["SOTALAB_HELD_OUT"], "splits", "test.txt")
else:
    eval_path = os.path.join("splits", "val.txt")
train_words, eval_words = words("names.txt"), words(eval_path)
chars = sorted(set("".join(train_words)))
eval_words = [w for w in eval_words if set(w) <= set(chars)]
max_len = max(len(w) for w in train_words + eval_words)
train_set = mm.CharDataset(train_words, chars, max_len)
eval_set = mm.CharDataset(eval_words, chars, max_len)
config = mm.ModelConfig(vocab_size=train_set.get_vocab_size(), block_size=train_set.get_output_length())
model = mm.Transformer(config)
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
loader = mm.InfiniteDataLoader(train_set, batch_size=32, num_workers=0)
for step in range(STEPS):
    X, Y = loader.next()
    _, loss = model(X, Y)
    model.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
model.eval()
total, count = 0.0, 0
with torch.no_grad():
    for X, Y in torch.utils.data.DataLoader(eval_set, batch_size=500):
        _, loss = model(X, Y)
        n = int((Y != -1).sum())
        total, count = total + loss.item() * n, count + n
print(f"val_loss={total / count:.5f}")
