"""sotalab's evaluator for Bonartze/repro-benchmark, brought by the campaign's overlay.

The repository is a package with a src/ layout and a console script (`repro-benchmark run`
writes outputs/results.csv: accuracy and macro F1 of logistic regression and a random
forest on iris and wine). The lab never installs the repository, so this script calls the
function the console script points to with src/ first on the path, reads the CSV the code
wrote and prints the means itself (a metric counts only when the evaluator prints it).
"""

import csv
import os
import sys

seed = os.environ.get("SOTALAB_SEED", "0")
# The package is not installed (the lab never installs the repository): import it from src/.
sys.path.insert(0, "src")
from repro_benchmark.cli import main  # noqa: E402

if main(["--outdir", "outputs", "run", "--seed", seed]):
    sys.exit(1)
rows = list(csv.DictReader(open("outputs/results.csv")))
for row in rows:
    print(f"{row['dataset']:>6} {row['model']:>7} accuracy={float(row['accuracy']):.4f} f1={float(row['f1_macro']):.4f}")
print(f"mean_accuracy={sum(float(r['accuracy']) for r in rows) / len(rows):.5f}")
print(f"mean_f1={sum(float(r['f1_macro']) for r in rows) / len(rows):.5f}")
