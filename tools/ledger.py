"""The ledger: one SQLite database (WAL) holding every record of the lab.

Schema changes are forward migrations, applied in order and recorded by name in
``schema_migrations``; the schema version is the number applied. Add a migration by
appending to ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

import fcntl
import functools
import json
import sqlite3
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # sqlite_utils pulls in numpy; import it only when a ledger is opened
    import sqlite_utils

BUSY_TIMEOUT_MS = 30_000


def now() -> str:
    """UTC timestamp in ISO 8601, the one time format of the ledger."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def loads(text: str | None, default=None):
    return default if text in (None, "") else json.loads(text)


def _initial_schema(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE campaigns (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'active',
            paper_id TEXT,
            repo_url TEXT,
            repo_commit TEXT,
            env_id TEXT,
            baseline_trial_id INTEGER,
            objective TEXT NOT NULL,
            evaluator TEXT NOT NULL,
            protected_paths TEXT NOT NULL DEFAULT '[]',
            held_out_paths TEXT NOT NULL DEFAULT '[]',
            budgets TEXT NOT NULL DEFAULT '{}',
            spent TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE trials (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            parent_id INTEGER REFERENCES trials(id),
            idea_id INTEGER REFERENCES ideas(id),
            kind TEXT NOT NULL,
            hypothesis TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'open',
            label TEXT,
            depth INTEGER NOT NULL DEFAULT 0,
            branch TEXT,
            worktree TEXT,
            commit_sha TEXT,
            diff_stat TEXT,
            score REAL,
            score_std REAL,
            seed_scores TEXT,
            metrics TEXT,
            delta_parent REAL,
            delta_baseline REAL,
            cost TEXT NOT NULL DEFAULT '{}',
            evaluated_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX trials_campaign ON trials(campaign_id);
        CREATE INDEX trials_campaign_score ON trials(campaign_id, score);
        CREATE INDEX trials_parent ON trials(parent_id);
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER REFERENCES campaigns(id),
            trial_id INTEGER REFERENCES trials(id),
            purpose TEXT NOT NULL DEFAULT 'adhoc',
            seed INTEGER,
            argv TEXT NOT NULL,
            env TEXT NOT NULL DEFAULT '{}',
            cwd TEXT NOT NULL,
            executor TEXT NOT NULL,
            env_id TEXT,
            resources TEXT NOT NULL DEFAULT '{}',
            budget TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL,
            reason TEXT,
            exit_code INTEGER,
            pid INTEGER,
            supervisor_pid INTEGER,
            run_dir TEXT,
            metrics TEXT,
            telemetry TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT
        );
        CREATE INDEX runs_status ON runs(status);
        CREATE INDEX runs_trial ON runs(trial_id);
        CREATE TABLE environments (
            id TEXT PRIMARY KEY,
            campaign_id INTEGER REFERENCES campaigns(id),
            backend TEXT NOT NULL,
            spec TEXT NOT NULL,
            status TEXT NOT NULL,
            location TEXT,
            log_path TEXT,
            diagnostics TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            ended_at TEXT
        );
        CREATE TABLE papers (
            id TEXT PRIMARY KEY,
            campaign_id INTEGER REFERENCES campaigns(id),
            source TEXT NOT NULL,
            arxiv_id TEXT,
            title TEXT,
            authors TEXT,
            abstract TEXT,
            pages INTEGER,
            pdf_path TEXT,
            extraction TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE ideas (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            type TEXT NOT NULL,
            risk TEXT NOT NULL DEFAULT 'medium',
            priority INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'open',
            trial_id INTEGER REFERENCES trials(id),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE notes (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER REFERENCES campaigns(id),
            trial_id INTEGER REFERENCES trials(id),
            kind TEXT NOT NULL DEFAULT 'analysis',
            title TEXT NOT NULL,
            body TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE TABLE failure_memories (
            id INTEGER PRIMARY KEY,
            signature TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            evidence TEXT NOT NULL DEFAULT '[]',
            fix TEXT NOT NULL DEFAULT '',
            worked INTEGER,
            campaign_id INTEGER REFERENCES campaigns(id),
            env_id TEXT,
            run_id INTEGER,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX failure_memories_signature ON failure_memories(signature);
        CREATE TABLE audits (
            id INTEGER PRIMARY KEY,
            trial_id INTEGER NOT NULL REFERENCES trials(id),
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            depth TEXT NOT NULL,
            verdict TEXT NOT NULL,
            reason TEXT NOT NULL,
            checks TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX audits_trial ON audits(trial_id);
        CREATE TABLE journal (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            tool TEXT NOT NULL,
            args_digest TEXT NOT NULL,
            campaign_id INTEGER,
            duration_ms REAL NOT NULL,
            ok INTEGER NOT NULL,
            error TEXT
        );
        """
    )
    db["notes"].enable_fts(["title", "body", "tags"], create_triggers=True, tokenize="porter")


def _runs_supervision(db: sqlite_utils.Database) -> None:
    """Runs: why a run ended (outcome), the supervisor's start time (so a reused pid is
    never mistaken for it) and the container name of a Docker run."""
    db.executescript(
        """
        ALTER TABLE runs ADD COLUMN outcome TEXT;
        ALTER TABLE runs ADD COLUMN supervisor_ctime REAL;
        ALTER TABLE runs ADD COLUMN container TEXT;
        """
    )


def _audit_finalizations(db: sqlite_utils.Database) -> None:
    """Held-out final evaluations (campaign_finalize): one row per call, kept forever."""
    db.executescript(
        """
        CREATE TABLE finalizations (
            id INTEGER PRIMARY KEY,
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            trial_id INTEGER REFERENCES trials(id),
            baseline_trial_id INTEGER REFERENCES trials(id),
            audit_id INTEGER REFERENCES audits(id),
            seeds TEXT NOT NULL,
            result TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX finalizations_campaign ON finalizations(campaign_id);
        CREATE INDEX audits_campaign ON audits(campaign_id, depth);
        """
    )


def _audit_commit(db: sqlite_utils.Database) -> None:
    """Audits: the commit audited, so a trial whose code changed since is no claim."""
    db.execute("ALTER TABLE audits ADD COLUMN commit_sha TEXT")


def _campaign_overlay(db: sqlite_utils.Database) -> None:
    """Campaigns: the overlay (files and data splits the campaign brings to a repository
    that lacks them, with their hashes) and the code's provenance (upstream URL and
    commit, whatever local mirror it was cloned from)."""
    db.executescript(
        """
        ALTER TABLE campaigns ADD COLUMN overlay TEXT;
        ALTER TABLE campaigns ADD COLUMN provenance TEXT;
        """
    )


def _scale_out(db: sqlite_utils.Database) -> None:
    """Clusters and many agents: a run's job on a Slurm or Ray cluster; a campaign's
    execution settings (executor, partition, account, ...) and surfaces (named sets of
    paths a specialist may change); the surface a trial declares; leases on ideas and
    trials, so two agents never work the same one."""
    db.executescript(
        """
        ALTER TABLE runs ADD COLUMN cluster_job TEXT;
        ALTER TABLE campaigns ADD COLUMN execution TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE campaigns ADD COLUMN surfaces TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE trials ADD COLUMN surface TEXT;
        CREATE TABLE claims (
            kind TEXT NOT NULL,
            item_id INTEGER NOT NULL,
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            agent TEXT NOT NULL,
            expires_at REAL NOT NULL,
            claimed_at TEXT NOT NULL,
            PRIMARY KEY (kind, item_id)
        );
        CREATE INDEX claims_campaign ON claims(campaign_id, kind);
        """
    )


def _integrity_levels(db: sqlite_utils.Database) -> None:
    """Trust by construction: label and data globs on campaigns; the integrity level and
    the evaluation's own record (tests used, reproduction, failed seeds) on trials, and
    the multi-seed mean and interval of the latest valid full audit (what ranks a trial);
    the level and the server-drawn seeds on audits."""
    db.executescript(
        """
        ALTER TABLE campaigns ADD COLUMN label_paths TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE campaigns ADD COLUMN data_paths TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE trials ADD COLUMN integrity TEXT;
        ALTER TABLE trials ADD COLUMN evaluation TEXT;
        ALTER TABLE trials ADD COLUMN audited_mean REAL;
        ALTER TABLE trials ADD COLUMN audited TEXT;
        ALTER TABLE audits ADD COLUMN integrity TEXT;
        ALTER TABLE audits ADD COLUMN seeds TEXT;
        """
    )


def _jobs(db: sqlite_utils.Database) -> None:
    """Jobs: long tool calls run in the background (tools/jobs.py), with their progress,
    result or error, and the server process that ran them (``owner``), so a job whose
    server stopped is reported lost, never left running forever."""
    db.executescript(
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            tool TEXT NOT NULL,
            arguments TEXT NOT NULL,
            campaign_id INTEGER,
            status TEXT NOT NULL,
            owner TEXT NOT NULL,
            progress REAL,
            total REAL,
            message TEXT,
            result TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            ended_at TEXT
        );
        CREATE INDEX jobs_status ON jobs(status);
        """
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("0001_initial", _initial_schema),
    ("0002_runs_supervision", _runs_supervision),
    ("0003_audit_finalizations", _audit_finalizations),
    ("0004_audit_commit", _audit_commit),
    ("0005_scale_out", _scale_out),
    ("0006_campaign_overlay", _campaign_overlay),
    ("0007_integrity_levels", _integrity_levels),
    ("0008_jobs", _jobs),
]


@functools.cache
def _ledger_class():
    import sqlite_utils

    class Ledger(sqlite_utils.Database):
        """sqlite-utils' Database that never writes from a stale read snapshot.

        In WAL mode, a connection that holds a read snapshot and then writes after
        another connection has committed fails at once with "database is locked"
        (SQLITE_BUSY_SNAPSHOT): the busy timeout cannot help, because waiting never
        makes a stale snapshot current. Two paths led there under concurrency:
        ``collect`` recorded a run's end while still iterating a SELECT (``query`` now
        returns its rows at once, as an iterator like sqlite-utils' own), and
        sqlite-utils' deferred write transactions (``atomic``, below).
        """

        def query(self, sql, params=None):
            return iter(list(super().query(sql, params)))

        @contextmanager
        def atomic(self):
            """sqlite-utils' write transaction (every insert, update, delete), begun
            IMMEDIATE. Why: its plain BEGIN is deferred, and a statement inside may read
            before it writes (an insert into ``notes`` loads the FTS5 config first);
            upgrading that read to a write after another connection committed fails at
            once with "database is locked". IMMEDIATE takes the write lock first, and
            waits for it under the busy timeout."""
            if self.conn.in_transaction:  # nested: sqlite-utils' savepoint
                with super().atomic():
                    yield self
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.rollback()
                raise
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise

    return Ledger


def connect(path: Path) -> sqlite_utils.Database:
    """Open the ledger, creating and migrating it as needed.

    Autocommit mode: every statement commits at once unless wrapped in
    ``with db.conn:``, so a state change is on disk before it is reported.
    """
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = _ledger_class()(conn)
    migrate(db)
    return db


def migrate(db: sqlite_utils.Database) -> int:
    """Apply every migration not yet applied; return the schema version."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in db.execute("SELECT name FROM schema_migrations").fetchall()}
    if len(applied) == len(MIGRATIONS):
        return len(applied)
    # A file lock, not a transaction: executescript() commits on its own, and two
    # processes opening a new ledger at once must not both run the same migration.
    lock_path = Path(db.conn.execute("PRAGMA database_list").fetchone()[2] + ".migrate.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        applied = {row[0] for row in db.execute("SELECT name FROM schema_migrations").fetchall()}
        for version, (name, step) in enumerate(MIGRATIONS, start=1):
            if name in applied:
                continue
            step(db)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                [version, name, now()],
            )
    return len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]


@contextmanager
def transaction(db: sqlite_utils.Database):
    """One write transaction (BEGIN IMMEDIATE ... COMMIT) on an autocommit connection.

    ``with db.conn:`` does not open one when ``isolation_level=None``: each statement
    commits on its own. Inside, use ``db.execute`` (sqlite-utils' table methods commit
    through ``with conn:`` and would end the transaction early).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
