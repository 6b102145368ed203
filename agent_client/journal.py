"""The agent's durable record of started jobs: a small SQLite file written BEFORE executing.

Each job token's ``jti`` is inserted (and synced to disk) before the agent tells the STS
"started" and before anything runs, so a replayed token, or the same job leased again after
a crash, is refused as ``token.replayed`` and never runs twice. ``record_many`` records the
tokens of several jobs that are ready together in one transaction: one sync for all of them,
each still durable before its job starts.

``seen`` answers from an in-memory set that mirrors the file: loaded when it is opened, added
to only after a record is durable, and pruned with it. The running agent holds the file's
exclusive lock, so no one else can change the file behind the mirror.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from agent_client.errors import AgentStateBusy

SCHEMA = """
CREATE TABLE IF NOT EXISTS started (
    jti TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    exp INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
)
"""
# Entries are kept this long after the token's exp; an expired token is refused anyway.
RETENTION_SECONDS = 7 * 86400


class StartedJournal:
    """``seen(jti)`` and ``record(jti, job_id, exp)`` over a private SQLite file.

    The running agent opens it exclusively (one agent per state directory, and no per-query
    file locking); ``read_only=True`` (for ``explain``) reads a snapshot without locking.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self._seen: set[str] = set()
        if read_only:
            uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
            self._load()
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Why: the record is what stops a replay; create it private so no one else can delete rows.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, timeout=0.5)
        try:
            # Why: FULL sync makes the INSERT durable before we execute; a crash right after
            # recording must not forget it.
            self._db.execute("PRAGMA synchronous=FULL")
            # Why: one agent per state directory. Two agents sharing a record could each think
            # a token is new; the exclusive lock makes the second one refuse to start.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(SCHEMA)
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._db.close()
            raise AgentStateBusy(
                f"replay record {path} is in use by another agent process ({exc})", file=str(path)
            ) from None
        self._load()

    def _load(self) -> None:
        try:
            self._seen = {row[0] for row in self._db.execute("SELECT jti FROM started")}
        except sqlite3.OperationalError:
            self._seen = set()  # a read-only snapshot of a file that was never written

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StartedJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def seen(self, jti: str) -> bool:
        """True if ``jti`` was recorded (in this file, by this or an earlier run)."""
        return jti in self._seen

    def record(self, jti: str, job_id: str, exp: int, now: float | None = None) -> bool:
        """Insert ``jti``; ``False`` if it was already there (a replay). Durable when it returns."""
        return self.record_many([(jti, job_id, exp)], now)[0]

    def record_many(self, records: Sequence[tuple[str, str, int]], now: float | None = None) -> list[bool]:
        """Insert each (jti, job_id, exp) in one transaction and one sync; per record, ``False`` if
        its jti was already recorded (a replay, or twice in ``records``). Durable when it returns."""
        stamp = int(time.time() if now is None else now)
        fresh: list[bool] = []
        added: list[str] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for jti, job_id, exp in records:
                try:
                    self._db.execute(
                        "INSERT INTO started (jti, job_id, exp, recorded_at) VALUES (?, ?, ?, ?)",
                        (jti, job_id, exp, stamp),
                    )
                except sqlite3.IntegrityError:
                    fresh.append(False)
                    continue
                fresh.append(True)
                added.append(jti)
            # Why: with synchronous=FULL the COMMIT returns only once every row is on disk, so each
            # job's record is durable before that job may start, as with one record at a time.
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        # Only once durable: the mirror never says "seen" for a record a crash could lose.
        self._seen.update(added)
        return fresh

    def prune(self, now: float | None = None) -> int:
        """Forget tokens long past their exp (they can no longer validate); returns rows removed."""
        limit = int(time.time() if now is None else now) - RETENTION_SECONDS
        self._db.execute("BEGIN IMMEDIATE")
        try:
            gone = [row[0] for row in self._db.execute("SELECT jti FROM started WHERE exp < ?", (limit,))]
            removed = self._db.execute("DELETE FROM started WHERE exp < ?", (limit,)).rowcount
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._seen.difference_update(gone)
        return removed
