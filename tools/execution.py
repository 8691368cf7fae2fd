"""Where a lab's runs execute: the executor (local, docker, slurm, ray) and the
cluster settings (Slurm partition, account, QoS, extra sbatch flags; the Ray
address), for the whole lab and per campaign.

The lab's settings live in ``<home>/execution.json``; a campaign's in its ledger row,
holding only what it changes. A run takes the campaign's value where it set one,
else the lab's, else the default (the local executor). Settings are copied into the
run's request when it is submitted, so changing them never moves a run in flight.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from . import campaigns, ledger
from .errors import InvalidInput
from .home import Lab
from .registry import tool

Executor = Literal["local", "docker", "slurm", "ray"]
CLUSTER_EXECUTORS = ("slurm", "ray")
LAB_FILE = "execution.json"
# sbatch options the executor sets itself: a flag here would detach the job from its
# run directory, its script or its environment allowlist.
RESERVED_SBATCH = ("--wrap", "--output", "--error", "--chdir", "-D", "--export", "--job-name", "-J", "--parsable",
                   "--array", "--dependency", "--uid", "--gid")
SLURM_NAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,64}$")


class SlurmSettings(BaseModel):
    partition: str | None = Field(None, description="sbatch --partition")
    account: str | None = Field(None, description="sbatch --account")
    qos: str | None = Field(None, description="sbatch --qos")
    extra_flags: list[str] = Field(default_factory=list, max_length=20,
                                   description="more sbatch flags, each '--name' or '--name=value' "
                                               "(e.g. '--constraint=a100', '--reservation=lab')")
    cpus_per_run: int = Field(1, ge=1, le=512, description="sbatch --cpus-per-task for a run that asks for none")
    python: str | None = Field(None, description="the Python on the nodes that has sotalab installed "
                                                 "(default: the server's own, which must then be on shared storage)")

    @field_validator("partition", "account", "qos")
    @classmethod
    def _name(cls, v):
        if v is not None and not SLURM_NAME.match(v):
            raise ValueError(f"{v!r} is not a Slurm name (letters, digits, '_.:+-', at most 64)")
        return v

    @field_validator("extra_flags")
    @classmethod
    def _flags(cls, flags):
        for flag in flags:
            name = flag.split("=", 1)[0]
            if not flag.startswith("--") or any(c in flag for c in "\n\r\x00") or len(flag) > 200:
                raise ValueError(f"sbatch flag {flag[:80]!r} must be one '--name' or '--name=value' on one line")
            if name in RESERVED_SBATCH:
                raise ValueError(f"sbatch flag {name} is set by sotalab itself (run directory, script, environment)")
        return flags


class RaySettings(BaseModel):
    address: str | None = Field(None, description="the Ray dashboard (Jobs API) address, e.g. "
                                                  "'http://head:8265'; default $RAY_ADDRESS, else http://127.0.0.1:8265")
    python: str | None = Field(None, description="the Python on the workers that has sotalab installed "
                                                 "(default: the server's own)")

    @field_validator("address")
    @classmethod
    def _address(cls, v):
        if v is not None and not re.match(r"^(https?|ray)://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._/-]*)?$", v):
            raise ValueError(f"{v[:80]!r} is not a Ray address (http://host:8265)")
        return v


class Execution(BaseModel):
    executor: Executor = Field("local", description="where runs execute: local (bubblewrap/process group), docker, "
                                                    "slurm (sbatch) or ray (Jobs API)")
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    ray: RaySettings = Field(default_factory=RaySettings)


class ExecutionSet(BaseModel):
    campaign: int | None = Field(None, description="omit: the lab's default")
    executor: Executor | None = None
    slurm: SlurmSettings | None = None
    ray: RaySettings | None = None


class ExecutionOut(BaseModel):
    campaign: int | None
    execution: Execution = Field(description="what a run started now gets")
    own: dict = Field(description="what this level sets (the rest: lab or defaults)")


def _lab_own(lab: Lab) -> dict:
    try:
        return json.loads(lab.path(LAB_FILE).read_text())
    except FileNotFoundError:
        return {}


def _campaign_own(lab: Lab, campaign_id: int) -> dict:
    row = lab.db.execute("SELECT execution FROM campaigns WHERE id = ?", [campaign_id]).fetchone()
    if row is None:
        campaigns.load(lab, campaign_id)  # raises NotFound with its hint
    return ledger.loads(row[0], {})


def resolve(lab: Lab, campaign_id: int | None) -> Execution:
    """The settings a run of this campaign (or of no campaign) gets now."""
    merged = _lab_own(lab)
    if campaign_id is not None:
        merged |= _campaign_own(lab, campaign_id)
    return Execution.model_validate(merged)


@tool(idempotent=True)
def execution_set(lab: Lab, args: ExecutionSet) -> ExecutionOut:
    """Choose where the lab's or a campaign's runs execute, and the cluster settings.

    Choose where runs execute, for the lab or one campaign: the executor (local,
    docker, slurm, ray) and the cluster settings (Slurm partition, account, QoS, extra
    sbatch flags, CPUs per run, the nodes' Python; the Ray address). A campaign's
    settings override the lab's; runs already submitted keep theirs. Settings given for
    slurm or ray replace that executor's settings as a whole."""
    changes = args.model_dump(exclude={"campaign"}, exclude_none=True)
    if not changes:
        raise InvalidInput("nothing to set", hint="pass executor, slurm or ray")
    if args.campaign is None:
        from .runs.logcap import write_json_atomic

        write_json_atomic(lab.path(LAB_FILE), _lab_own(lab) | changes)
    else:
        own = _campaign_own(lab, args.campaign) | changes
        lab.db.execute("UPDATE campaigns SET execution = ?, updated_at = ? WHERE id = ?",
                       [ledger.dumps(own), ledger.now(), args.campaign])
    return settings(lab, args.campaign)


def settings(lab: Lab, campaign_id: int | None) -> ExecutionOut:
    """Where runs of the lab (or of one campaign) execute, and what that level sets itself:
    lab_status shows the lab's, campaign_view a campaign's."""
    own = _lab_own(lab) if campaign_id is None else _campaign_own(lab, campaign_id)
    return ExecutionOut(campaign=campaign_id, execution=resolve(lab, campaign_id), own=own)
