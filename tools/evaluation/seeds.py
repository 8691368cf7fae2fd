"""Seeds: the evaluator's own for ordinary scoring, fresh random ones for audits.

An audit's seeds are drawn here when the audit starts and written to the ledger before
any run, so no trial can know them in advance (code that behaves only on seeds 0-4
gains nothing) and the audit can say afterwards exactly what it ran.
"""

from __future__ import annotations

import secrets

SEED_SPACE = 2**31 - 1  # what every framework's seed argument accepts


def draw(n: int, avoid: list[int] = ()) -> list[int]:
    """``n`` distinct unpredictable seeds, none of them in ``avoid``."""
    chosen: list[int] = []
    while len(chosen) < n:
        seed = secrets.randbelow(SEED_SPACE)
        if seed not in chosen and seed not in avoid:
            chosen.append(seed)
    return chosen
