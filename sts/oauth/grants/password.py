"""``grant_type=password`` (RFC 6749 §4.3): a login (``sts.oauth.login``) and a token pair."""

from __future__ import annotations

from typing import Any, ClassVar

from realms.errors import JobstsError, UnavailableError
from realms.identity.principal import Principal
from sts.db import relax_durability
from sts.oauth import refresh_tokens
from sts.oauth.grants.base import Grant, client_id_of
from sts.oauth.log_names import username_digest
from sts.observability import audit
from sts.observability.metrics import LOGINS


class PasswordGrant(Grant):
    grant_type: ClassVar[str] = "password"

    def issue(self) -> dict[str, Any]:
        username = self.param("username") or ""
        try:
            body, principal = self._login(username)
        except JobstsError as exc:
            outcome = getattr(exc, "outcome", None) or (
                "unavailable" if isinstance(exc, UnavailableError) else "failed"
            )
            LOGINS.labels(self.realm, outcome).inc()
            # Why: a password typed into the username field must not reach the log; a keyed digest
            # still shows repeated guessing against one name (sts/oauth/log_names.py).
            typed = username_digest(username, self.services.master_key)
            audit.record("login", outcome=outcome, realm=self.realm, code=exc.code, username=typed)
            raise
        LOGINS.labels(self.realm, "ok").inc()
        audit.record("login", actor=str(principal.access_id), realm=self.realm, username=principal.username)
        return body

    def _login(self, username: str) -> tuple[dict[str, Any], Principal]:
        password = self.form.get("password") or ""
        client_id = client_id_of(self.form, self.realm, self.services.config.clients)
        with self.services.db.engine.connect() as conn:
            # One Core transaction for the throttle read and the refresh-token insert (on
            # SQLite, sts.oauth.login ends the read before the directory call).
            principal = self.services.login.login(self.realm, username, password, self.client_address, conn)
            token, ttl = self.access_token(principal, client_id)
            # Why: a refresh token lost in a database crash only costs its holder a new login;
            # not waiting for the WAL flush takes a disk sync off every login.
            relax_durability(conn)
            refresh = refresh_tokens.issue(
                conn, self.realm, principal.username, client_id, ttl=self.policy.refresh_token_ttl
            )
            conn.commit()
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "refresh_token": refresh}, principal
