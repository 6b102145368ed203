"""Brute-force protection for password logins (Keycloak's model), shared through the database.

Failures are counted per (realm, username) and per client address. Once a counter reaches
its failure factor, each further failure locks it for ``wait_increment * (failures - factor
+ 1)`` seconds, capped at ``max_wait``; a counter with no failure for ``reset_seconds``
starts over. While locked, the caller gets exactly the wrong-password answer and the
directory is not asked. A directory outage is never counted.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Select, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import BindParameter

from sts.config import ThrottlePolicy
from sts.db import Database
from sts.oauth.models import LoginFailures


def _key(kind: str, *parts: str) -> str:
    return hashlib.sha256("\x00".join((kind, *parts)).encode("utf-8")).hexdigest()


def user_key(realm: str, username: str) -> str:
    # Why: directories match uids without case; "John" and "john" must share one counter.
    return _key("user", realm, username.casefold())


def address_key(address: str) -> str:
    return _key("addr", address)


@functools.cache
def _state_statement(size: int) -> Select[int, int]:
    """The counters' read for ``size`` keys, built once: its compiled form is cached, only the
    keys change (a fresh ``in_([...])`` per login is keyed and expanded anew each time)."""
    keys: list[BindParameter[str]] = [bindparam(f"key{i}") for i in range(size)]
    return select(LoginFailures.locked_until, LoginFailures.failures).where(LoginFailures.key.in_(keys))


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    factor: int


class LoginThrottle:
    """Reads and updates the failure counters; every update is one short transaction."""

    def __init__(self, db: Database, policy: ThrottlePolicy, clock: Callable[[], float] = time.time) -> None:
        self.db, self.policy, self.clock = db, policy, clock

    def counters(self, realm: str, username: str, address: str) -> list[Counter]:
        return [
            Counter(user_key(realm, username), self.policy.failure_factor),
            Counter(address_key(address), self.policy.per_address_failure_factor),
        ]

    def state(self, counters: Sequence[Counter], conn: Connection | None = None) -> tuple[bool, bool]:
        """(locked, any failure on record) for these counters, in one Core read; on ``conn``
        (inside the caller's transaction) when given."""
        now = int(self.clock())
        statement = _state_statement(len(counters))
        keys = {f"key{i}": c.key for i, c in enumerate(counters)}
        if conn is None:
            with self.db.engine.connect() as own:
                rows = own.execute(statement, keys).all()
        else:
            rows = conn.execute(statement, keys).all()
        return any(locked_until > now for locked_until, _ in rows), any(failures for _, failures in rows)

    def locked(self, counters: Sequence[Counter]) -> bool:
        return self.state(counters)[0]

    def failed(self, counters: Sequence[Counter]) -> None:
        now = int(self.clock())
        for counter in counters:
            self._count(counter, now)

    def _count(self, counter: Counter, now: int) -> None:
        policy = self.policy
        with self.db.session(immediate=True) as session:
            row = session.get(LoginFailures, counter.key)
            if row is None:
                try:
                    with session.begin_nested():
                        row = LoginFailures(key=counter.key, failures=0, last_failure=now, locked_until=0)
                        session.add(row)
                except IntegrityError:
                    row = session.get(LoginFailures, counter.key)
                    assert row is not None
            if now - row.last_failure > policy.reset_seconds:
                row.failures = 0
            failures = row.failures + 1
            locked_until = row.locked_until
            if failures >= counter.factor:
                wait = min(policy.max_wait_seconds, policy.wait_increment_seconds * (failures - counter.factor + 1))
                locked_until = max(locked_until, now + wait)
            # Why: an atomic increment-by-where keeps two processes from losing a failure.
            session.execute(
                update(LoginFailures)
                .where(LoginFailures.key == counter.key)
                .values(failures=failures, last_failure=now, locked_until=locked_until)
            )

    def succeeded(self, realm: str, username: str) -> None:
        """A correct password clears the user's counter (not the address's: an attacker's own
        account must not wash away the failures of an address that is guessing passwords)."""
        with self.db.session() as session:
            row = session.get(LoginFailures, user_key(realm, username))
            if row is not None and row.failures:
                row.failures, row.locked_until = 0, 0
