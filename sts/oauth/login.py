"""The one login: a username and password checked against a realm's registry, behind the
brute-force throttle. The password grant and a job submitted with credentials both use it,
so neither is a way around the other's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import Connection

from realms.errors import LoginFailed
from realms.identity.principal import Principal
from realms.registries.base import Registry
from sts.oauth.errors import LoginLocked
from sts.oauth.throttle import LoginThrottle

log = logging.getLogger(__name__)
LOGIN_FAILED = "invalid username or password"
MAX_USERNAME = 256


class LoginService:
    """``login()`` returns the principal or raises ``login.failed`` (with ``outcome="locked"`` while locked)."""

    def __init__(self, registries: Mapping[str, Registry], throttle: LoginThrottle) -> None:
        self.registries, self.throttle = registries, throttle

    def login(
        self, realm: str, username: str, password: str, client_address: str, conn: Connection | None = None
    ) -> Principal:
        """Check ``password`` for ``username`` in ``realm`` (the caller checked that it is hosted).

        With ``conn``, the throttle is read in the transaction the caller goes on to write its
        refresh token in (one database round trip fewer per login). A directory outage
        (``ldap.unavailable``, 503) propagates and is deliberately not counted.
        """
        # Why: an empty password would be an anonymous bind in LDAP, which "succeeds"; a
        # malformed name is refused the same way so neither reveals anything.
        if not password or len(username) > MAX_USERNAME or not username.isprintable():
            raise LoginFailed(LOGIN_FAILED, realm=realm)
        counters = self.throttle.counters(realm, username, client_address)
        locked, has_failures = self.throttle.state(counters, conn)
        if conn is not None and conn.dialect.name == "sqlite":
            # Why: a SQLite read transaction that later writes fails (SQLITE_BUSY_SNAPSHOT) if
            # any other login committed meanwhile; end the read before the directory is asked.
            conn.rollback()
        if locked:
            # Why: while locked the answer is exactly the wrong-password answer and the
            # directory is not asked, so a lock neither confirms the account nor lets
            # guessing continue; the true reason is only logged.
            log.warning("%s", LoginLocked(f"realm {realm}: login locked for a user or address", realm=realm))
            raise LoginFailed(LOGIN_FAILED, realm=realm, outcome="locked")
        # Why: the password goes straight to the registry's bind and is dropped; it is never
        # stored, logged, or part of any digest.
        principal = self.registries[realm].authenticate(username, password)
        if principal is None:
            self.throttle.failed(counters)
            raise LoginFailed(LOGIN_FAILED, realm=realm)
        if has_failures:
            self.throttle.succeeded(realm, username)
        return principal
