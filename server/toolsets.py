"""Which tools a server offers: `sotalab serve --toolset NAME[,NAME...]`.

Every tool a host lists costs context in every model request, and some hosts cap the
number of tools, so a host sees what its work needs:

- ``default``: the research loop end to end in 25 tools (what the shipped host configs serve),
  ``campaign_view`` among them so that hosts with MCP Apps show the live dashboard;
- an area (``lab``, ``papers``, ``code``, ``envs``, ``runs``, ``evaluation``, ``team``: leases, surfaces
  and parent choice for several agents on one campaign, ``cluster``: executors) to add to it;
- a role (``init``, ``scheduler``, ...): the tools its skill lists (``allowed-tools``);
- ``roles``: every role's tools (what the Claude Code plugin's subagents need);
- ``all``: every tool.

``job_wait`` comes with every selection: a tool that starts a job is useless without it.
"""

from __future__ import annotations

from sotalab.tools.errors import InvalidInput

ALWAYS = ("job_wait",)

AREAS: dict[str, tuple[str, ...]] = {
    "lab": ("lab_status", "campaign_create", "campaign_get", "campaign_update", "campaign_view",
            "trial_create", "trial_get", "idea_set", "idea_list",
            "note_add", "note_search", "job_wait", "workspace_diff"),
    "papers": ("paper_search", "paper_fetch", "paper_read", "paper_tables", "paper_results", "paper_page_image"),
    "code": ("repo_clone", "workspace_read", "workspace_write", "workspace_diff", "trial_snapshot"),
    "envs": ("env_build", "env_get", "env_diagnose"),
    "runs": ("run_start", "run_wait", "run_logs", "run_cancel", "lab_status"),
    "evaluation": ("trial_evaluate", "audit_trial", "audit_get", "campaign_finalize", "campaign_report"),
    "team": ("lease_take", "campaign_view", "surfaces_set", "parent_pick"),
    "cluster": ("execution_set", "lab_status", "campaign_view", "run_wait", "run_cancel"),
}

DEFAULT = (
    "lab_status", "campaign_create", "campaign_get", "campaign_update",
    "trial_create", "trial_get", "idea_set", "idea_list", "note_add",
    "campaign_view", "paper_fetch", "paper_read", "paper_results", "repo_clone", "workspace_read",
    "workspace_write", "workspace_diff", "trial_snapshot", "env_build",
    "env_diagnose", "run_logs", "trial_evaluate", "audit_trial", "campaign_finalize", "job_wait",
)


def toolset_names() -> list[str]:
    from .roles import ROLES

    return ["default", "all", "roles", *AREAS, *ROLES]


def select(spec: str, available: set[str]) -> set[str]:
    """The tool names ``spec`` (comma-separated toolset names) selects among ``available``.

    Names a toolset lists that this build lacks are left out, so a toolset never breaks
    a server; an unknown toolset name is refused with the known ones.
    """
    from .roles import ROLES, load_skill

    chosen: set[str] = set(ALWAYS)
    for name in (part.strip() for part in spec.split(",")):
        if name == "all":
            chosen |= available
        elif name == "default":
            chosen |= set(DEFAULT)
        elif name in AREAS:
            chosen |= set(AREAS[name])
        elif name in ROLES:
            chosen |= set(load_skill(name).tools)
        elif name == "roles":
            for role in ROLES:
                chosen |= set(load_skill(role).tools)
        else:
            raise InvalidInput(f"unknown toolset {name!r}",
                               hint=f"use one or more of: {', '.join(toolset_names())}, separated by commas")
    return (chosen | shape_referents(chosen)) & available


def shape_referents(names: set[str]) -> set[str]:
    """The tools whose schemas spell out a structure that one of ``names`` only refers to
    (campaign_update's objective is campaign_create's): they come along, so a model is
    never pointed at a shape it cannot see."""
    from sotalab.tools.registry import all_tools

    specs = all_tools()
    return {other for name in names if name in specs for other in specs[name].shape_referents}
