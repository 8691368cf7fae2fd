"""What a trial's side runs (``run_start``, not its evaluations) cost, read from the runs
table when a trial is shown, so the figure can never drift from the runs themselves."""

from __future__ import annotations

from .. import ledger
from ..home import Lab

SIDE_RUN = "adhoc"  # RunRequest's default purpose; evaluation steps name theirs


def side_run_cost(lab: Lab, trial_id: int) -> dict:
    """Totals over the trial's ended runs that were not evaluation steps: count, wall
    seconds, CPU seconds, GPU seconds and energy (J, where NVML measured it)."""
    rows = lab.db.execute("SELECT telemetry FROM runs WHERE trial_id = ? AND purpose = ? AND ended_at IS NOT NULL",
                          [trial_id, SIDE_RUN]).fetchall()
    totals = {"runs": len(rows), "wall_s": 0.0, "cpu_s": 0.0, "gpu_s": 0.0, "energy_j": 0.0}
    for (telemetry,) in rows:
        summary = ledger.loads(telemetry, {}) or {}
        for key in ("wall_s", "cpu_s", "gpu_s", "energy_j"):
            totals[key] += summary.get(key) or 0.0
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in totals.items()}


def campaign_side_gpu_hours(lab: Lab, campaign_id: int) -> float:
    """GPU-hours the campaign's side runs have used: they count against its GPU budget."""
    total = 0.0
    for (telemetry,) in lab.db.execute("SELECT telemetry FROM runs WHERE campaign_id = ? AND purpose = ? "
                                       "AND ended_at IS NOT NULL", [campaign_id, SIDE_RUN]).fetchall():
        total += (ledger.loads(telemetry, {}) or {}).get("gpu_s") or 0.0
    return total / 3600
