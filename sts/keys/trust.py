"""A ``TrustResolver`` over this STS's own realms (used to verify the tokens it issued)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from realms.tokens.verify import IssuerTrust

if TYPE_CHECKING:
    from sts.keys.store import KeyStore

REFRESH_INTERVAL_SECONDS = 1.0


class StsTrustResolver:
    """issuer → realm comes only from the configuration (``base_url``), never from the request."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self._realm_by_issuer = {store.config.issuer(name): name for name in store.config.realms}
        self._last_refresh = 0.0

    def _trust(self, issuer: str, force: bool) -> IssuerTrust | None:
        realm = self._realm_by_issuer.get(issuer)
        if realm is None:
            return None
        keys = self.store.published(realm, force=force)
        policy = self.store.config.realms[realm].token
        algorithms = frozenset({policy.algorithm, *(k.algorithm for k in keys)})
        return IssuerTrust(realm, issuer, algorithms, {k.kid: k.verification for k in keys}, leeway=policy.leeway)

    def issuer_trust(self, issuer: str) -> IssuerTrust | None:
        return self._trust(issuer, force=False)

    def refreshed_trust(self, issuer: str) -> IssuerTrust | None:
        # Why: an unknown kid may be a key another process just made; reload at most once a
        # second so a flood of made-up kids cannot turn into a flood of database reads.
        now = time.monotonic()
        if now - self._last_refresh < REFRESH_INTERVAL_SECONDS:
            return None
        self._last_refresh = now
        return self._trust(issuer, force=True)
