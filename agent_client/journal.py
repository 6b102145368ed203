"""The agent's durable record of started jobs: a small SQLite file written BEFORE executing.

Each job token's ``jti`` is inserted (and synced to disk) before the agent tells the STS
"started" and before anything runs, so a replayed token, or the same job leased again after
a crash, is refused as ``token.replayed`` and never runs twice.
"""

from __future__ import annotations

import os
import sqlite3
import time
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
        if read_only:
            uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
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

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StartedJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def seen(self, jti: str) -> bool:
        row = self._db.execute("SELECT 1 FROM started WHERE jti = ?", (jti,)).fetchone()
        return row is not None

    def record(self, jti: str, job_id: str, exp: int, now: float | None = None) -> bool:
        """Insert ``jti``; ``False`` if it was already there (a replay). Durable when it returns."""
        stamp = int(time.time() if now is None else now)
        try:
            self._db.execute(
                "INSERT INTO started (jti, job_id, exp, recorded_at) VALUES (?, ?, ?, ?)", (jti, job_id, exp, stamp)
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def prune(self, now: float | None = None) -> int:
        """Forget tokens long past their exp (they can no longer validate); returns rows removed."""
        limit = int(time.time() if now is None else now) - RETENTION_SECONDS
        return self._db.execute("DELETE FROM started WHERE exp < ?", (limit,)).rowcount
