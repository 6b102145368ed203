"""Housekeeping: drop rows whose only purpose has passed (expired refresh tokens, assertion
jtis, revocations, stale login counters), and run ``also`` (the key store's scheduled
rotations). Run opportunistically, at most every ``interval``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from sts.db import Database
from sts.oauth.id_tokens import purge_expired as purge_id_token_grants
from sts.oauth.models import LoginFailures, RefreshToken, SeenAssertion
from sts.oauth.revocation import purge_expired

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 600.0


class Housekeeper:
    """``maybe_run()`` purges when the last pass in this process is older than ``interval``."""

    def __init__(
        self,
        db: Database,
        reset_seconds: int,
        interval: float = DEFAULT_INTERVAL,
        also: Callable[[], object] | None = None,
    ) -> None:
        self.db, self.reset_seconds, self.interval, self.also = db, reset_seconds, interval, also
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def maybe_run(self) -> None:
        if time.monotonic() - self._last < self.interval or not self._lock.acquire(blocking=False):
            return
        try:
            self._last = time.monotonic()
            self.run(int(time.time()))
        except SQLAlchemyError as exc:
            log.warning("housekeeping skipped: %s", type(exc).__name__)
        finally:
            self._lock.release()

    def run(self, now: int) -> None:
        with self.db.session() as session:
            revoked = purge_expired(session, now)
            session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now))
            purge_id_token_grants(session, now)
            session.execute(delete(SeenAssertion).where(SeenAssertion.exp < now))
            # A counter idle for longer than the reset window would start over anyway.
            session.execute(
                delete(LoginFailures).where(
                    LoginFailures.last_failure < now - self.reset_seconds, LoginFailures.locked_until < now
                )
            )
        log.info("housekeeping: %d expired revocations dropped", revoked)
        if self.also is not None:
            self.also()
