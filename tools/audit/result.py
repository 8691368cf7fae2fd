"""What a check returns, and how an audit's checks combine into one verdict."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CheckVerdict = Literal["pass", "warn", "fail", "skip"]
AuditVerdict = Literal["valid", "invalid", "inconclusive"]

# A failing check of these kinds means the gain cannot be trusted at all; a failing
# significance or gain check only means it has not been shown (yet).
INCONCLUSIVE_WHEN_FAILING = frozenset({"significance", "gain", "parent_gain"})
MAX_EVIDENCE = 50


class Evidence(BaseModel):
    """One observation behind a verdict: where, what rule, what value."""

    rule: str | None = Field(None, description="rule id broken (see the supervisor's red lines), if any")
    file: str | None = Field(None, description="repository-relative file")
    line: int | None = Field(None, description="line in the trial's version of the file")
    value: str | float | int | None = Field(None, description="the offending value or line text")
    detail: str = Field("", description="what was found, in one line")


class CheckResult(BaseModel):
    name: str = Field(description="protected, integrity, diff_rules, runtime, metrics, gain, reproduce, significance, "
                                  "parent_gain, budget (audits); held_out_agreement (finalize)")
    verdict: CheckVerdict
    summary: str = Field(description="one line: what the check found")
    evidence: list[Evidence] = Field(default_factory=list)
    data: dict = Field(default_factory=dict, description="numbers behind the verdict (intervals, p-values...)")

    @classmethod
    def of(cls, name: str, evidence: list[Evidence], *, fail: list[Evidence] | None = None,
           ok: str, bad: str, data: dict | None = None) -> "CheckResult":
        """fail when ``fail`` (a subset of evidence) is non-empty, warn when only
        evidence remains, else pass; evidence is capped at MAX_EVIDENCE items."""
        failing = evidence if fail is None else fail
        verdict = "fail" if failing else ("warn" if evidence else "pass")
        shown = evidence[:MAX_EVIDENCE]
        summary = ok if verdict == "pass" else bad
        if len(evidence) > MAX_EVIDENCE:
            summary += f" ({len(evidence) - MAX_EVIDENCE} more findings not shown)"
        return cls(name=name, verdict=verdict, summary=summary, evidence=shown, data=data or {})


def combine(checks: list[CheckResult], depth: str) -> tuple[AuditVerdict, str]:
    """The audit's overall verdict and a one-paragraph reason.

    invalid: any check other than significance and gain failed. inconclusive: only
    those failed (no gain shown), or a full audit could not run a check it needs.
    valid: nothing failed (warnings are listed in the reason).
    """
    failed = [c for c in checks if c.verdict == "fail"]
    warned = [c for c in checks if c.verdict == "warn"]
    hard = [c for c in failed if c.name not in INCONCLUSIVE_WHEN_FAILING]
    parts = []
    if hard:
        verdict: AuditVerdict = "invalid"
        parts.append("Invalid: " + "; ".join(f"{c.name} failed ({c.summary})" for c in hard) + ".")
    elif failed:
        verdict = "inconclusive"
        parts.append("Inconclusive: " + "; ".join(f"{c.name}: {c.summary}" for c in failed) + ".")
    else:
        skipped = [c for c in checks if c.verdict == "skip" and depth == "full"
                   and c.name in ("reproduce", "significance")]
        if skipped:
            verdict = "inconclusive"
            parts.append("Inconclusive: " + "; ".join(f"{c.name} could not run ({c.summary})" for c in skipped) + ".")
        else:
            verdict = "valid"
            passed = [c.name for c in checks if c.verdict == "pass"]
            parts.append(f"Valid: {', '.join(passed) or 'no check'} passed.")
    if warned:
        parts.append("Warnings: " + "; ".join(f"{c.name}: {c.summary}" for c in warned) + ".")
    if depth == "quick":
        parts.append("Quick audit: reproducibility and significance were not checked; "
                     "only a valid full audit makes the trial a claim.")
    return verdict, " ".join(parts)
