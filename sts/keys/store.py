"""The key store: each realm's signing keys, encrypted in the database, cached in memory.

States and timing are ``sts.keys.lifecycle``'s: a rotation adds a ``next`` key that is
published at once and signs from ``activates_at`` (``key_prepublish_seconds`` later), so
every cache that refreshed within that time knows it before its first signature. The key it
replaces stays published until ``published_until`` plus the leeway (the longest token
lifetime after it stopped signing), then is retired and its private key wiped. Signing
writes nothing to the database.

Other processes rotate too: ``sts_key_rings.generation`` grows on every change and is
re-read at most once per ``check_interval`` seconds. Rotations take the ring row's lock
(and SQLite's one writer), re-read, then decide, so concurrent rotations make one key.

The store writes no audit line and counts no metric itself: whoever builds it passes
``on_signed``, called after each signature (``sts.services`` records ``token.issued`` there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from realms.config import TokenPolicy
from realms.errors import InputError
from realms.tokens.jws import MAX_TOKEN_BYTES
from realms.tokens.keys import jwk_thumbprint, public_jwk
from sts.config import StsConfig
from sts.db import Database
from sts.keys import lifecycle
from sts.keys.master_key import MasterKey
from sts.keys.material import generate_private_key, private_key_bytes
from sts.keys.models import KeyRing, SigningKey
from sts.keys.ring_keys import RingKeys, SigningKeyMissing, StoredKey, load_ring_keys, signing_key_aad
from sts.keys.signer import sign_compact
from sts.keys.trust import StsTrustResolver

# ID tokens must be available in RS256 (OpenID Connect Core §15.1); a realm whose tokens use
# another algorithm keeps a second key ring, "<realm>#RS256", used only for ID tokens. It is
# made on first use (the first ID token or key-set read), not at start: an RSA key costs
# a second to generate.
ID_TOKEN_ALGORITHM = "RS256"  # noqa: S105 (an algorithm name, not a secret)
RING_SEPARATOR = "#"
# Called after each signature with (realm, claims, typ, kid).
SignedHook = Callable[[str, dict[str, Any], str, str], None]
__all__ = ["KeyStore", "SigningKeyMissing", "StoredKey", "TokenTooLarge", "id_token_ring"]


class TokenTooLarge(InputError):
    """A token the verifiers would refuse for its size (``realms.tokens.jws.MAX_TOKEN_BYTES``)."""

    code: ClassVar[str] = "token.too_large"
    status: ClassVar[int] = 400


def id_token_ring(realm: str, algorithm: str) -> str:
    """The key ring that signs ``realm``'s ID tokens: the realm's own when it uses RS256."""
    return realm if algorithm == ID_TOKEN_ALGORITHM else f"{realm}{RING_SEPARATOR}{ID_TOKEN_ALGORITHM}"


class KeyStore:
    """Signs for every hosted realm and publishes their JWKS."""

    def __init__(
        self,
        db: Database,
        master_key: MasterKey,
        config: StsConfig,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        on_signed: SignedHook | None = None,
    ) -> None:
        self.db, self.master_key, self.config = db, master_key, config
        self.check_interval, self.clock, self.on_signed = check_interval, clock, on_signed
        self._cache: dict[str, RingKeys] = {}
        self._lock = threading.Lock()
        self._resolver: StsTrustResolver | None = None

    # --- lifecycle -------------------------------------------------------------------
    def ensure_active(self) -> None:
        """Give every realm an active key of its configured algorithm (first start, or a changed policy).

        Only the realm's own ring: the RS256 ID-token ring is made on first use."""
        for realm in self.config.realms:
            self._ensure_ring(realm)
            self.settle(realm)
            # Why: decrypt now, so a wrong master key stops the start instead of the first login.
            self.realm_keys(realm, force=True)

    def _ensure_ring(self, ring: str) -> None:
        if self._has_signer(self._rows(ring), ring):
            return  # the usual start: read only, no write lock
        with self.db.session(immediate=True) as session:
            self._lock_ring(session, ring)
            rows = self._live_rows(session, ring)
            if not self._has_signer(rows, ring):
                self._schedule_locked(session, ring, rows, immediate=True)

    def _has_signer(self, rows: list[SigningKey], ring: str) -> bool:
        current = lifecycle.signer(rows, self.clock())
        return current is not None and current.algorithm == self._ring_algorithm(ring)

    def rings(self, realm: str) -> list[str]:
        """The realm's key rings: its own, and the RS256 ID-token ring when it signs with another algorithm."""
        own = self._realm_policy(realm).algorithm
        return [realm] if own == ID_TOKEN_ALGORITHM else [realm, id_token_ring(realm, own)]

    def id_token_ring(self, realm: str) -> str:
        return id_token_ring(realm, self._realm_policy(realm).algorithm)

    def _ring_algorithm(self, ring: str) -> str:
        _, separator, algorithm = ring.partition(RING_SEPARATOR)
        return algorithm if separator else self._realm_policy(ring).algorithm

    def rotate(self, realm: str, *, immediate: bool = False) -> str:
        """Schedule a new key for every ring of the realm; returns the new kid of the realm's own ring.

        The new key is published now and signs after ``key_prepublish_seconds``; an already
        scheduled key is kept. ``immediate`` (the emergency path) makes the pending or a new
        key sign now, before caches have it: verifiers refetch on the unknown kid.
        """
        # The realm's own ring always exists; an ID-token ring not made yet needs no rotation.
        own = self.rotate_ring(realm, immediate=immediate)
        for ring in self._existing_rings(realm):
            if ring != realm:
                self.rotate_ring(ring, immediate=immediate)
        return own

    def rotate_ring(self, ring: str, *, immediate: bool = False) -> str:
        self._realm_policy(ring)
        with self.db.session(immediate=True) as session:
            self._lock_ring(session, ring)
            kid = self._schedule_locked(session, ring, self._live_rows(session, ring), immediate=immediate)
        self.settle(ring)
        self._cache.pop(ring, None)
        return kid

    def rotate_due(self) -> list[str]:
        """Automatic rotation (``key_rotation_days``) of every ring that is due; returns the new kids.

        Safe to run in every process at once: the decision is taken again under the ring's lock."""
        made: list[str] = []
        for realm in self.config.realms:
            policy = self._realm_policy(realm)
            if policy.key_rotation_days <= 0:
                continue
            for ring in self._existing_rings(realm):
                if not self._due(ring, policy, self._rows(ring)):
                    continue
                with self.db.session(immediate=True) as session:
                    self._lock_ring(session, ring)
                    rows = self._live_rows(session, ring)
                    if self._due(ring, policy, rows):
                        made.append(self._schedule_locked(session, ring, rows, immediate=False))
                self._cache.pop(ring, None)
        return made

    def maintain(self) -> list[str]:
        """What housekeeping runs: automatic rotations, then every existing ring's states settled."""
        made = self.rotate_due()
        for realm in self.config.realms:
            for ring in self._existing_rings(realm):
                self.settle(ring)
        return made

    def _due(self, ring: str, policy: TokenPolicy, rows: list[SigningKey]) -> bool:
        now = self.clock()
        pending = any(r.state in ("active", "next") and lifecycle.signs_from(r) > now for r in rows)
        return lifecycle.rotation_due(lifecycle.signer(rows, now), pending, policy, now)

    def _existing_rings(self, realm: str) -> list[str]:
        with self.db.session() as session:
            found = set(session.scalars(select(KeyRing.realm).where(KeyRing.realm.in_(self.rings(realm)))))
        return [ring for ring in self.rings(realm) if ring in found]

    def _schedule_locked(self, session: Session, ring: str, rows: list[SigningKey], *, immediate: bool) -> str:
        now = int(self.clock())
        policy = self._realm_policy(ring)
        pending = [r for r in rows if r.state in ("active", "next") and lifecycle.signs_from(r) > now]
        algorithm = self._ring_algorithm(ring)
        reuse = pending[-1] if pending and pending[-1].algorithm == algorithm else None
        # A scheduled key starts strictly after every other key, so the successor is unambiguous.
        latest = max((lifecycle.signs_from(r) for r in rows if r not in pending), default=now - 1)
        starts = now if immediate else max(now + policy.key_prepublish_seconds, latest + 1)
        if reuse is not None:
            successor = reuse
            if immediate:
                successor.activates_at = starts
        else:
            successor = self._new_key(session, ring, algorithm, now, starts)
        for row in pending:
            if row is not successor:  # scheduled for an algorithm the realm no longer uses; it never signed
                row.state, row.retired_at, row.private_key = "retired", now, None
        starts = lifecycle.signs_from(successor)
        for row in rows:
            if row is not successor and row.state in ("active", "next") and lifecycle.signs_from(row) <= starts:
                # Why: it signs until its successor does, so tokens it signed live until then + the longest lifetime.
                row.published_until = max(row.published_until, lifecycle.published_until(starts, policy))
                if starts <= now:  # replaced now: written down at once, so no same-second tie remains
                    row.state, row.retiring_since = "retiring", now
        return successor.kid

    def _new_key(self, session: Session, ring: str, algorithm: str, now: int, activates_at: int) -> SigningKey:
        private = generate_private_key(algorithm)
        public = private.public_key()
        kid = jwk_thumbprint(public)
        row = SigningKey(
            kid=kid,
            realm=ring,
            algorithm=algorithm,
            state="active" if activates_at <= now else "next",
            private_key=self.master_key.encrypt(private_key_bytes(private), signing_key_aad(ring, kid)),
            public_jwk=public_jwk(public, algorithm),
            created_at=now,
            activates_at=activates_at,
            published_until=0,
        )
        session.add(row)
        session.flush()
        return row

    def settle(self, ring: str) -> dict[str, str]:
        """Write down the states that time has changed: a due ``next`` key becomes ``active``, the
        keys it replaced ``retiring``, and retiring keys past ``published_until`` + leeway ``retired``
        (private key wiped). Returns the changed kids with their new state."""
        if not self._settle_changes(self._rows(ring)):
            return {}
        with self.db.session(immediate=True) as session:
            self._lock_ring(session, ring)
            rows = list(session.scalars(select(SigningKey).where(SigningKey.realm == ring)))
            changes = self._settle_changes(rows)
            current = lifecycle.signer(rows, self.clock())
            for row in rows:
                state = changes.get(row.kid)
                if state in ("retiring", "retired"):
                    row.published_until = self._until(row, rows)
                if state == "retiring" and current is not None:
                    row.retiring_since = lifecycle.signs_from(current)
                elif state == "retired":
                    row.retired_at, row.private_key = int(self.clock()), None
                if state is not None:
                    row.state = state
        self._cache.pop(ring, None)
        return changes

    def _settle_changes(self, rows: list[SigningKey]) -> dict[str, str]:
        now = self.clock()
        leeway = self._realm_policy(rows[0].realm).leeway if rows else 0
        states = lifecycle.effective_states(rows, now)
        changes: dict[str, str] = {}
        for row in rows:
            state = states[row.kid]
            if state == "retiring" and self._until(row, rows) + leeway < now:
                state = "retired"
            if state != row.state:
                changes[row.kid] = state
        return changes

    def _until(self, key: SigningKey | StoredKey, keys: Sequence[SigningKey] | Sequence[StoredKey]) -> int:
        """``published_until`` of a key that no longer signs; computed from its successor when not written yet."""
        if key.published_until:
            return key.published_until
        current = lifecycle.signer(keys, self.clock())
        starts = lifecycle.signs_from(current) if current is not None else int(self.clock())
        return lifecycle.published_until(starts, self._realm_policy(key.realm))

    def retire_expired(self, realm: str) -> list[str]:
        """Settle the ring; returns the kids retired now."""
        return [kid for kid, state in self.settle(realm).items() if state == "retired"]

    def _rows(self, ring: str) -> list[SigningKey]:
        with self.db.session() as session:
            return self._live_rows(session, ring)

    def _live_rows(self, session: Session, ring: str) -> list[SigningKey]:
        return list(
            session.scalars(
                select(SigningKey)
                .where(SigningKey.realm == ring, SigningKey.state != "retired")
                .order_by(SigningKey.created_at)
            )
        )

    def _lock_ring(self, session: Session, realm: str) -> None:
        """Take the realm's ring row (row lock on PostgreSQL) and bump its generation."""
        updated = session.execute(
            update(KeyRing).where(KeyRing.realm == realm).values(generation=KeyRing.generation + 1)
        )
        if getattr(updated, "rowcount", 0) == 0:
            try:
                with session.begin_nested():
                    session.add(KeyRing(realm=realm, generation=1))
            except IntegrityError:
                session.execute(update(KeyRing).where(KeyRing.realm == realm).values(generation=KeyRing.generation + 1))

    # --- cache -----------------------------------------------------------------------
    def _realm_policy(self, realm: str) -> TokenPolicy:
        """The token policy of a realm, or of the realm a key ring (``<realm>#RS256``) belongs to."""
        return self.config.hosted_realm(realm.partition(RING_SEPARATOR)[0]).token

    def _load(self, realm: str) -> RingKeys:
        with self.db.session() as session:
            ring = session.get(KeyRing, realm)
            rows = self._live_rows(session, realm)
        return load_ring_keys(realm, ring.generation if ring else 0, rows, self.master_key, self.clock)

    def realm_keys(self, realm: str, *, force: bool = False) -> RingKeys:
        """The ring's cached keys, reloaded when another process changed them; an empty ID-token
        ring gets its first key here."""
        self._realm_policy(realm)
        cached = self._cache.get(realm)
        now = self.clock()
        if cached is not None and not force and now - cached.checked_at < self.check_interval:
            return cached
        if cached is not None and not force:
            with self.db.session() as session:
                generation = session.scalar(select(KeyRing.generation).where(KeyRing.realm == realm))
            if generation == cached.generation:
                cached.checked_at = now
                return cached
        with self._lock:
            loaded = self._load(realm)
            if not loaded.keys and RING_SEPARATOR in realm:
                self._ensure_ring(realm)
                loaded = self._load(realm)
            self._cache[realm] = loaded
        return loaded

    def published(self, realm: str, *, force: bool = False) -> list[StoredKey]:
        """Keys whose signatures may be presented: next, active, and retiring ones until published_until + leeway."""
        leeway = self._realm_policy(realm).leeway
        now = self.clock()
        current = self.realm_keys(realm, force=force)
        states = lifecycle.effective_states(current.keys, now)
        return [k for k in current.keys if states[k.kid] != "retiring" or self._until(k, current.keys) + leeway >= now]

    # --- use -------------------------------------------------------------------------
    def sign(self, realm: str, claims: dict[str, Any], typ: str) -> str:
        """Sign ``claims`` with the ring's current key; the header carries ``kid`` and ``typ``
        (RFC 7515 §4.1). Writes nothing: publication is bounded by policy (``sts.keys.lifecycle``).
        """
        current = self.realm_keys(realm)
        key = current.signer(self.clock())
        if key is None:
            raise SigningKeyMissing(f"realm {realm} has no active signing key; run jobsts init", realm=realm)
        token = sign_compact(claims, current.privates[key.kid], key.algorithm, key.kid, typ)
        if len(token) > MAX_TOKEN_BYTES:
            # Why: a token the verifiers refuse (a user in thousands of groups) must fail here,
            # with its cause, not later at an agent as a malformed token.
            raise TokenTooLarge(
                f"the {typ} token would be {len(token)} bytes, more than the {MAX_TOKEN_BYTES} that verifiers "
                "accept; the subject has too many groups, or the job spec is too large",
                realm=realm.partition(RING_SEPARATOR)[0],
            )
        if self.on_signed is not None:
            self.on_signed(realm.partition(RING_SEPARATOR)[0], claims, typ, key.kid)
        return token

    def jwks(self, realm: str) -> dict[str, list[dict[str, str]]]:
        """The realm's public JWK Set (RFC 7517 §5). Public members only, by construction."""
        return {"keys": [dict(k.jwk) for ring in self.rings(realm) for k in self.published(ring)]}

    def jwks_max_age(self, realm: str) -> int:
        """Cache-Control max-age of the key set: caches refresh before a pre-published key signs."""
        return lifecycle.jwks_max_age(self._realm_policy(realm))

    def trust_resolver(self) -> StsTrustResolver:
        """A ``realms.tokens.TrustResolver`` over this STS's realms (one per KeyStore, cached)."""
        if self._resolver is None:
            self._resolver = StsTrustResolver(self)
        return self._resolver

    def describe(self, realm: str) -> list[dict[str, Any]]:
        """Every key of every ring of the realm with its state now, for ``jobsts keys list`` and the console."""
        self._realm_policy(realm)
        now = self.clock()
        described: list[dict[str, Any]] = []
        with self.db.session() as session:
            for ring in self.rings(realm):
                rows = list(
                    session.scalars(select(SigningKey).where(SigningKey.realm == ring).order_by(SigningKey.created_at))
                )
                states = lifecycle.effective_states(rows, now)
                described += [
                    {
                        "kid": r.kid,
                        "ring": ring,
                        "algorithm": r.algorithm,
                        "state": states[r.kid],
                        "created_at": r.created_at,
                        "activates_at": lifecycle.signs_from(r),
                        "retiring_since": r.retiring_since,
                        "published_until": r.published_until or None,
                        "retired_at": r.retired_at,
                    }
                    for r in rows
                ]
        return described
