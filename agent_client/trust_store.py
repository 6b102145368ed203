"""The agent's trust store: per-realm key sets (RFC 7517 JWK Sets), own realm + trusted realms only.

Implements ``realms.tokens.TrustResolver``. Each realm's keys are held apart, so a key of
realm B never verifies a token that claims realm A. Keys come from the STS
(``GET {sts}/realms/<realm>/jwks``), cached on disk with a bounded staleness, or from a
static bundle file for nodes that must not reach the STS for keys. An unknown kid triggers
at most one refetch per ``refetch_interval``.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_client.errors import AgentConfigInvalid, TrustUnavailable
from realms.errors import JobstsError
from realms.tokens.keys import VerificationKey, verification_key_from_jwk
from realms.tokens.profiles import SIGNING_ALGORITHMS
from realms.tokens.verify import IssuerTrust
from realms.tokens.weak_keys import weak_key_reason

log = logging.getLogger(__name__)

# fetch(realm) -> (JWK Set, Cache-Control max-age or None); raises on any failure.
JwksFetcher = Callable[[str], tuple[dict[str, Any], int | None]]
DEFAULT_SOFT_TTL = 300


@dataclass(slots=True)
class _RealmKeys:
    trust: IssuerTrust
    fetched_at: float
    soft_ttl: float


def keys_from_jwks(realm: str, jwks: Any, algorithms: frozenset[str]) -> dict[str, VerificationKey]:
    """The usable keys of one JWK Set; weak, mismatched or private keys are skipped with a warning."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError(f"key set of realm {realm} is not a JWK Set")
    keys: dict[str, VerificationKey] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict):
            log.warning("realm %s: skipping a JWK that is not an object", realm)
            continue
        key = verification_key_from_jwk(jwk, algorithms)
        if key is None:
            continue
        if key.kid in keys:
            # Why: two keys under one kid would make the choice of key order-dependent.
            log.warning("realm %s: skipping duplicate kid %s", realm, key.kid)
            keys.pop(key.kid)
            continue
        keys[key.kid] = key
    return keys


class TrustStore:
    """Trusted realms' keys, by issuer. Only ``realms`` (own + trusted) are ever resolved."""

    def __init__(
        self,
        *,
        realms: frozenset[str],
        issuer_of: Callable[[str], str],
        cache_dir: Path | None,
        fetch: JwksFetcher | None,
        bundles: Mapping[str, Path] | None = None,
        algorithms: Mapping[str, frozenset[str]] | None = None,
        max_age: int = 3600,
        refetch_interval: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._realm_by_issuer = {issuer_of(realm): realm for realm in realms}
        self._issuer_of = issuer_of
        self._cache_dir = cache_dir
        self._fetch = fetch
        self._bundles = dict(bundles or {})
        self._algorithms = {r: (algorithms or {}).get(r, frozenset(SIGNING_ALGORITHMS)) for r in realms}
        self._max_age = max_age
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._keys: dict[str, _RealmKeys] = {}
        self._weak: dict[str, list[str]] = {}
        self._last_attempt: dict[str, float] = {}
        for realm in sorted(realms):
            if realm in self._bundles:
                self._keys[realm] = self._load_bundle(realm, self._bundles[realm])
            else:
                cached = self._read_cache(realm)
                if cached is not None:
                    self._keys[realm] = cached

    @property
    def realms(self) -> frozenset[str]:
        return frozenset(self._realm_by_issuer.values())

    def _trust(self, realm: str, jwks: Any) -> IssuerTrust:
        algorithms = self._algorithms[realm]
        # Why: a weak key is skipped (keys_from_jwks) but must not pass silently: agent check lists it.
        listed = jwks.get("keys") if isinstance(jwks, dict) else None
        self._weak[realm] = [
            f"realm {realm}: key {str(jwk.get('kid'))[:64]} is {reason}; it is not trusted"
            for jwk in (listed if isinstance(listed, list) else [])
            if isinstance(jwk, dict) and (reason := weak_key_reason(jwk)) is not None
        ]
        return IssuerTrust(realm, self._issuer_of(realm), algorithms, keys_from_jwks(realm, jwks, algorithms))

    def _load_bundle(self, realm: str, path: Path) -> _RealmKeys:
        try:
            jwks = json.loads(path.read_text(encoding="utf-8"))
            trust = self._trust(realm, jwks)
        except (OSError, ValueError) as exc:
            raise AgentConfigInvalid(f"trust bundle {path} of realm {realm}: {exc}", field="trust.bundles") from None
        if not trust.keys:
            raise AgentConfigInvalid(f"trust bundle {path} of realm {realm} has no usable key", field="trust.bundles")
        return _RealmKeys(trust, float("inf"), float("inf"))

    def _cache_file(self, realm: str) -> Path | None:
        return None if self._cache_dir is None else self._cache_dir / f"{realm}.json"

    def _read_cache(self, realm: str) -> _RealmKeys | None:
        path = self._cache_file(realm)
        if path is None:
            return None
        try:
            info = os.lstat(path)
            # Why: a cache that others could write is a key set others chose; ignore it and refetch.
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
                log.warning("realm %s: ignoring unsafe JWKS cache %s", realm, path)
                return None
            document = json.loads(path.read_text(encoding="utf-8"))
            return _RealmKeys(self._trust(realm, document["jwks"]), float(document["fetched_at"]), 0.0)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("realm %s: ignoring unreadable JWKS cache %s", realm, path)
            return None

    def _write_cache(self, realm: str, jwks: dict[str, Any], fetched_at: float) -> None:
        path = self._cache_file(realm)
        if path is None:
            return
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{realm}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"fetched_at": fetched_at, "jwks": jwks}, handle)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("realm %s: cannot write JWKS cache: %s", realm, exc.strerror)

    def _refetch(self, realm: str) -> _RealmKeys | None:
        """Fetch ``realm``'s JWKS now; ``None`` (and a warning) if it fails."""
        if self._fetch is None:
            return None
        now = self._clock()
        self._last_attempt[realm] = now
        try:
            jwks, max_age = self._fetch(realm)
            trust = self._trust(realm, jwks)
        except (JobstsError, OSError, ValueError) as exc:
            log.warning("realm %s: JWKS fetch failed: %s", realm, exc)
            return None
        soft = float(min(max_age if max_age is not None else DEFAULT_SOFT_TTL, self._max_age))
        entry = _RealmKeys(trust, now, soft)
        self._keys[realm] = entry
        self._write_cache(realm, jwks, now)
        return entry

    def trust_for_realm(self, realm: str) -> IssuerTrust:
        """The current trust of ``realm``, refetching when due; ``trust.unavailable`` past the bound."""
        entry = self._keys.get(realm)
        now = self._clock()
        if entry is not None and now - entry.fetched_at < entry.soft_ttl:
            return entry.trust
        fresh = self._refetch(realm)
        if fresh is not None:
            return fresh.trust
        # Why: a realm whose keys cannot be fetched fails only its own tokens, and only once the
        # cached keys are older than the staleness bound (revoked keys must age out).
        if entry is not None and now - entry.fetched_at < self._max_age:
            return entry.trust
        raise TrustUnavailable(
            f"keys of realm {realm} could not be fetched and no copy younger than {self._max_age}s is cached",
            realm=realm,
        )

    def issuer_trust(self, issuer: str) -> IssuerTrust | None:
        """TrustResolver: the trust of a realm this node trusts, else ``None`` (``realm.untrusted``)."""
        realm = self._realm_by_issuer.get(issuer)
        return None if realm is None else self.trust_for_realm(realm)

    def refreshed_trust(self, issuer: str) -> IssuerTrust | None:
        """TrustResolver: after an unknown kid, one refetch per ``refetch_interval`` (never for bundles)."""
        realm = self._realm_by_issuer.get(issuer)
        if realm is None or realm in self._bundles:
            return None
        last = self._last_attempt.get(realm)
        # Why: unknown kids are attacker-controlled; without a rate limit every forged token
        # would become a request to the STS.
        if last is not None and self._clock() - last < self._refetch_interval:
            return None
        entry = self._refetch(realm)
        return None if entry is None else entry.trust

    def problems(self) -> list[str]:
        """One line per realm whose keys are unusable now (for ``jobsts agent check``)."""
        lines = []
        for realm in sorted(self.realms):
            try:
                if not self.trust_for_realm(realm).keys:
                    lines.append(f"realm {realm}: key set has no usable key")
            except JobstsError as exc:
                lines.append(f"realm {realm}: {exc.message}")
            lines.extend(self._weak.get(realm, []))
        return lines
