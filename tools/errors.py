"""Errors a caller can act on. Each carries what went wrong and what to do about it."""


class LabError(Exception):
    """An expected failure with a message fit for a user or a model.

    ``hint`` says what to do next; the server and the CLI show both, never a traceback.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class NotFound(LabError):
    """An id that names nothing in the ledger."""


class InvalidInput(LabError):
    """An argument that is well-typed but not acceptable (bad ref, escaping path...)."""


class BudgetExceeded(LabError):
    """A campaign budget (trials, GPU-hours...) is spent."""
