"""``grant_type=password`` (RFC 6749 §4.3): a login against the realm's registry, throttled."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from realms.errors import JobstsError, LoginFailed, UnavailableError
from realms.identity.principal import Principal
from sts import audit, refresh_tokens
from sts.db import relax_durability
from sts.errors import LoginLocked
from sts.grants.base import Grant, client_id_of
from sts.metrics import LOGINS

log = logging.getLogger(__name__)
LOGIN_FAILED = "invalid username or password"
MAX_USERNAME = 256


class PasswordGrant(Grant):
    grant_type: ClassVar[str] = "password"

    def issue(self) -> dict[str, Any]:
        username = self.param("username") or ""
        try:
            body, principal = self._login(username)
        except JobstsError as exc:
            outcome = getattr(exc, "outcome", None) or ("unavailable" if isinstance(exc, UnavailableError)
                                                        else "failed")
            LOGINS.labels(self.realm, outcome).inc()
            # The username is logged as typed (no password, ever) so that guessing shows up.
            audit.record("login", outcome=outcome, realm=self.realm, code=exc.code, username=username)
            raise
        LOGINS.labels(self.realm, "ok").inc()
        audit.record("login", actor=str(principal.access_id), realm=self.realm, username=principal.username)
        return body

    def _login(self, username: str) -> tuple[dict[str, Any], Principal]:
        password = self.form.get("password") or ""
        client_id = client_id_of(self.form)
        # Why: an empty password would be an anonymous bind in LDAP, which "succeeds"; a
        # malformed name is refused the same way so neither reveals anything.
        if not password or len(username) > MAX_USERNAME or not username.isprintable():
            raise LoginFailed(LOGIN_FAILED, realm=self.realm)
        throttle = self.services.throttle
        counters = throttle.counters(self.realm, username, self.client_address)
        locked, has_failures = throttle.state(counters)
        if locked:
            # Why: while locked the answer is exactly the wrong-password answer and the
            # directory is not asked, so a lock neither confirms the account nor lets
            # guessing continue; the true reason is only logged.
            log.warning("%s", LoginLocked(f"realm {self.realm}: login locked for a user or address", realm=self.realm))
            raise LoginFailed(LOGIN_FAILED, realm=self.realm, outcome="locked")
        # A RegistryUnavailable propagates as 503 and is deliberately not counted.
        principal = self.services.registries[self.realm].authenticate(username, password)
        if principal is None:
            throttle.failed(counters)
            raise LoginFailed(LOGIN_FAILED, realm=self.realm)
        if has_failures:
            throttle.succeeded(self.realm, username)
        token, ttl = self.access_token(principal, client_id)
        with self.services.db.session() as session:
            # Why: a refresh token lost in a database crash only costs its holder a new login;
            # not waiting for the WAL flush takes a disk sync off every login.
            relax_durability(session)
            refresh = refresh_tokens.issue(session, self.realm, principal.username, client_id,
                                           ttl=self.policy.refresh_token_ttl)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "refresh_token": refresh}, principal
