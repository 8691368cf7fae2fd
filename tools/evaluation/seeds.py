"""Seeds: the evaluator's own for ordinary scoring, fresh random ones for audits.

An audit's seeds are drawn here when the audit starts and written to the ledger before
any run, so no trial can know them in advance (code that behaves only on seeds 0-4
gains nothing) and the audit can say afterwards exactly what it ran.

``SOTALAB_SEED_DRAW`` (in the server's environment, never a run's) makes the draws
reproducible for tests and demos: the same value and the same ``key`` (which trial,
which audit) give the same seeds. Leave it unset for real campaigns.
"""

from __future__ import annotations

import os
import random
import secrets

SEED_SPACE = 2**31 - 1  # what every framework's seed argument accepts
REPRODUCIBLE_ENV = "SOTALAB_SEED_DRAW"


def draw(n: int, avoid: list[int] = (), key: str = "") -> list[int]:
    """``n`` distinct unpredictable seeds, none of them in ``avoid``."""
    fixed = os.environ.get(REPRODUCIBLE_ENV)
    below = random.Random(f"{fixed}:{key}").randrange if fixed else secrets.randbelow
    chosen: list[int] = []
    while len(chosen) < n:
        seed = below(SEED_SPACE)
        if seed not in chosen and seed not in avoid:
            chosen.append(seed)
    return chosen
