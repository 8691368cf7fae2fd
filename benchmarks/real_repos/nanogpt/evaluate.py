"""sotalab's evaluator for karpathy/nanoGPT's character-level model, brought by the overlay.

nanoGPT's shakespeare_char recipe downloads its text; this machine has no internet, so
the campaign's overlay brings the text (data/shakespeare_char/input.txt) too. This
script runs the repository's own prepare.py (which splits the text 90/10 into
train.bin and val.bin) and train.py with the recipe's config and the README's settings
for a CPU, for a fixed budget of iterations, and prints the final validation loss
train.py reports. The recipe's config file is the trial's to change.
"""

import re
import subprocess
import sys

CPU = ["--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=50", "--block_size=64",
       "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128", "--max_iters=200", "--lr_decay_iters=200",
       "--eval_interval=200"]  # train.py seeds itself (1337); it has no seed option

subprocess.run([sys.executable, "data/shakespeare_char/prepare.py"], check=True)
out = subprocess.run([sys.executable, "train.py", "config/train_shakespeare_char.py", *CPU],
                     check=True, stdout=subprocess.PIPE, text=True).stdout
losses = re.findall(r"val loss ([0-9.]+)", out)
print(out[-2000:])
print(f"val_loss={losses[-1]}")
