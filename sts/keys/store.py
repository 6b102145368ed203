"""The key store: each realm's signing keys, encrypted in the database, cached in memory.

States: ``active`` (signs; exactly one per realm), ``retiring`` (no longer signs, still
published), ``retired`` (unpublished; private key wiped). A key is published while it is
active, or while ``published_until`` (the latest ``exp`` it ever signed, bumped by the
signer *before* a token leaves) plus the realm's leeway is in the future. So a retiring
key stays in the JWKS for as long as any token it signed, job tokens of queued jobs
included, can still be presented.

Other processes rotate too: ``sts_key_rings.generation`` grows on every change and is
re-read at most once per ``check_interval`` seconds.

The store writes no audit line and counts no metric itself: whoever builds it passes
``on_signed``, called after each signature (``sts.services`` records ``token.issued`` there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from realms.config import TokenPolicy
from realms.errors import ConfigError
from realms.tokens.keys import VerificationKey, jwk_thumbprint, public_jwk
from sts.config import StsConfig
from sts.db import Database
from sts.keys.master_key import MasterKey
from sts.keys.material import PrivateKey, generate_private_key, load_private_key, private_key_bytes
from sts.keys.models import KeyRing, SigningKey
from sts.keys.signer import sign_compact
from sts.keys.trust import StsTrustResolver

# How far ahead of a token's exp the signer moves published_until, so that a burst of
# tokens costs one database write rather than one per token. Publishing longer is safe.
BUMP_AHEAD_SECONDS = 3600
RETIRE_GRACE_SECONDS = 60
# ID tokens must be available in RS256 (OpenID Connect Core §15.1); a realm whose tokens use
# another algorithm keeps a second key ring, "<realm>#RS256", used only for ID tokens.
ID_TOKEN_ALGORITHM = "RS256"  # noqa: S105 (an algorithm name, not a secret)
RING_SEPARATOR = "#"
# Called after each signature with (realm, claims, typ, kid).
SignedHook = Callable[[str, dict[str, Any], str, str], None]


class SigningKeyMissing(ConfigError):
    code: ClassVar[str] = "keys.missing"


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    realm: str
    algorithm: str
    state: str
    verification: VerificationKey
    jwk: dict[str, str]
    published_until: int
    created_at: int
    retiring_since: int | None


@dataclass(slots=True)
class _RealmKeys:
    generation: int
    keys: tuple[StoredKey, ...]
    active: StoredKey | None
    private: PrivateKey | None
    checked_at: float


def id_token_ring(realm: str, algorithm: str) -> str:
    """The key ring that signs ``realm``'s ID tokens: the realm's own when it uses RS256."""
    return realm if algorithm == ID_TOKEN_ALGORITHM else f"{realm}{RING_SEPARATOR}{ID_TOKEN_ALGORITHM}"


def _aad(realm: str, kid: str) -> bytes:
    return f"jobsts/signing-key/{realm}/{kid}".encode()


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
        self._cache: dict[str, _RealmKeys] = {}
        self._bumped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._resolver: StsTrustResolver | None = None

    # --- lifecycle -------------------------------------------------------------------
    def ensure_active(self) -> None:
        """Give every realm an active key of its configured algorithm (first start, or a changed policy)."""
        for realm in self.config.realms:
            for ring in self.rings(realm):
                with self.db.session(immediate=True) as session:
                    self._lock_ring(session, ring)
                    active = session.scalars(
                        select(SigningKey).where(SigningKey.realm == ring, SigningKey.state == "active")
                    ).first()
                    if active is None or active.algorithm != self._ring_algorithm(ring):
                        self._rotate_locked(session, ring)
                self.retire_expired(ring)
                # Why: decrypt now, so a wrong master key stops the start instead of the first login.
                self.realm_keys(ring, force=True)

    def rings(self, realm: str) -> list[str]:
        """The realm's key rings: its own, and the RS256 ID-token ring when it signs with another algorithm."""
        own = self._realm_policy(realm).algorithm
        return [realm] if own == ID_TOKEN_ALGORITHM else [realm, id_token_ring(realm, own)]

    def id_token_ring(self, realm: str) -> str:
        return id_token_ring(realm, self._realm_policy(realm).algorithm)

    def _ring_algorithm(self, ring: str) -> str:
        _, separator, algorithm = ring.partition(RING_SEPARATOR)
        return algorithm if separator else self._realm_policy(ring).algorithm

    def rotate(self, realm: str) -> str:
        """Make a new active key; the old one becomes retiring. Returns the new kid."""
        self._realm_policy(realm)
        with self.db.session(immediate=True) as session:
            self._lock_ring(session, realm)
            kid = self._rotate_locked(session, realm)
        self.retire_expired(realm)
        self._cache.pop(realm, None)
        return kid

    def retire_expired(self, realm: str) -> list[str]:
        """Retire retiring keys whose tokens have all expired; wipe their private keys."""
        now = int(self.clock())
        leeway = self._realm_policy(realm).leeway
        retired: list[str] = []
        with self.db.session(immediate=True) as session:
            for row in session.scalars(
                select(SigningKey).where(SigningKey.realm == realm, SigningKey.state == "retiring")
            ):
                # Why: another process may still hold this key as active for up to
                # check_interval and sign with it; the grace lets its bump land first.
                settled = row.retiring_since is None or row.retiring_since + RETIRE_GRACE_SECONDS <= now
                if settled and row.published_until + leeway < now:
                    row.state, row.retired_at, row.private_key = "retired", now, None
                    retired.append(row.kid)
            if retired:
                self._lock_ring(session, realm)
        if retired:
            self._cache.pop(realm, None)
        return retired

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

    def _rotate_locked(self, session: Session, realm: str) -> str:
        now = int(self.clock())
        algorithm = self._ring_algorithm(realm)
        for old in session.scalars(select(SigningKey).where(SigningKey.realm == realm, SigningKey.state == "active")):
            old.state, old.retiring_since = "retiring", now
        private = generate_private_key(algorithm)
        public = private.public_key()
        kid = jwk_thumbprint(public)
        session.add(
            SigningKey(
                kid=kid,
                realm=realm,
                algorithm=algorithm,
                state="active",
                private_key=self.master_key.encrypt(private_key_bytes(private), _aad(realm, kid)),
                public_jwk=public_jwk(public, algorithm),
                created_at=now,
                published_until=0,
            )
        )
        return kid

    # --- cache -----------------------------------------------------------------------
    def _realm_policy(self, realm: str) -> TokenPolicy:
        """The token policy of a realm, or of the realm a key ring (``<realm>#RS256``) belongs to."""
        return self.config.hosted_realm(realm.partition(RING_SEPARATOR)[0]).token

    def _load(self, realm: str) -> _RealmKeys:
        with self.db.session() as session:
            ring = session.get(KeyRing, realm)
            rows = list(
                session.scalars(
                    select(SigningKey)
                    .where(SigningKey.realm == realm, SigningKey.state != "retired")
                    .order_by(SigningKey.created_at)
                )
            )
        keys, active, private = [], None, None
        for row in rows:
            pub = VerificationKey(row.kid, row.algorithm, _public_from_jwk(row))
            stored = StoredKey(
                row.kid,
                realm,
                row.algorithm,
                row.state,
                pub,
                dict(row.public_jwk),
                row.published_until,
                row.created_at,
                row.retiring_since,
            )
            keys.append(stored)
            if row.state == "active" and row.private_key is not None:
                active = stored
                private = load_private_key(self.master_key.decrypt(row.private_key, _aad(realm, row.kid)))
        return _RealmKeys(ring.generation if ring else 0, tuple(keys), active, private, self.clock())

    def realm_keys(self, realm: str, *, force: bool = False) -> _RealmKeys:
        """The realm's cached keys, reloaded when another process changed them."""
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
            self._cache[realm] = loaded
        return loaded

    def published(self, realm: str, *, force: bool = False) -> list[StoredKey]:
        """Keys whose signatures may still be presented: the active key and unexpired retiring ones."""
        leeway = self._realm_policy(realm).leeway
        now = self.clock()
        current = self.realm_keys(realm, force=force)
        return [k for k in current.keys if k.state == "active" or k.published_until + leeway >= now]

    # --- use -------------------------------------------------------------------------
    def sign(self, realm: str, claims: dict[str, Any], typ: str, *, session: Session | None = None) -> str:
        """Sign ``claims`` with the realm's active key; the header carries ``kid`` and ``typ``.

        ``claims["exp"]`` is required: the key stays published until then. Pass ``session``
        when calling inside an open write transaction (SQLite has one writer at a time); the
        publication bump then commits, or rolls back, with the caller's transaction.
        """
        current = self.realm_keys(realm)
        if current.active is None or current.private is None:
            raise SigningKeyMissing(f"realm {realm} has no active signing key; run jobsts init", realm=realm)
        self._note_exp(current.active, int(claims["exp"]), session)
        token = sign_compact(claims, current.private, current.active.algorithm, current.active.kid, typ)
        if self.on_signed is not None:
            self.on_signed(realm.partition(RING_SEPARATOR)[0], claims, typ, current.active.kid)
        return token

    def _note_exp(self, key: StoredKey, exp: int, session: Session | None) -> None:
        known = max(self._bumped.get(key.kid, 0), key.published_until)
        if exp <= known:
            return
        target = exp + BUMP_AHEAD_SECONDS
        statement = (
            update(SigningKey)
            .where(SigningKey.kid == key.kid, SigningKey.published_until < target)
            .values(published_until=target)
        )
        if session is not None:
            session.execute(statement)
            return  # committed (or not) by the caller: do not trust it in the cache
        with self.db.session() as own:
            own.execute(statement)
        self._bumped[key.kid] = target

    def jwks(self, realm: str) -> dict[str, list[dict[str, str]]]:
        """The realm's public JWK Set (RFC 7517 §5). Public members only, by construction."""
        return {"keys": [dict(k.jwk) for ring in self.rings(realm) for k in self.published(ring)]}

    def trust_resolver(self) -> StsTrustResolver:
        """A ``realms.tokens.TrustResolver`` over this STS's realms (one per KeyStore, cached)."""
        if self._resolver is None:
            self._resolver = StsTrustResolver(self)
        return self._resolver

    def describe(self, realm: str) -> list[dict[str, Any]]:
        """Every key of the realm with its state, for ``jobsts keys list``."""
        self._realm_policy(realm)
        with self.db.session() as session:
            rows = session.scalars(select(SigningKey).where(SigningKey.realm == realm).order_by(SigningKey.created_at))
            return [
                {
                    "kid": r.kid,
                    "algorithm": r.algorithm,
                    "state": r.state,
                    "created_at": r.created_at,
                    "retiring_since": r.retiring_since,
                    "published_until": r.published_until,
                    "retired_at": r.retired_at,
                }
                for r in rows
            ]


def _public_from_jwk(row: SigningKey) -> Any:
    from realms.tokens.keys import verification_key_from_jwk

    key = verification_key_from_jwk(dict(row.public_jwk), frozenset({row.algorithm}))
    if key is None:
        raise SigningKeyMissing(f"realm {row.realm}: stored key {row.kid} is unusable", realm=row.realm)
    return key.public_key
