"""The audit: checks that decide whether a trial's gain is real.

Each check is a plain function over data (diff text, metric dicts, seed scores,
hashes) returning a ``CheckResult``; ``tools.py`` gathers the data from the ledger,
the workspaces and the evaluation path, runs the checks and stores the audit.
"""
