"""Evaluation: the only path that scores a trial. Modules in the order data flows:

export (a fresh export of a commit) -> seeds (drawn by the server for audits) -> steps
(the trial's predict step and the protected scorer, or the in_process script under the
runtime hook in ``hook/``) -> metrics (pure: extraction, labels, judgements) -> record
(the only writer of score, label and spend) -> pipeline (``evaluate`` and the
``trial_evaluate`` tool). The audit sits above this package; nothing here imports it.
"""
