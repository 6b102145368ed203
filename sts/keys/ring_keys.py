"""A key ring as one process caches it: the unretired keys, and the private keys that can sign."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from realms.errors import ConfigError
from realms.tokens.keys import VerificationKey, verification_key_from_jwk
from sts.keys import lifecycle
from sts.keys.master_key import MasterKey
from sts.keys.material import PrivateKey, load_sealed_private_key
from sts.keys.models import SigningKey


class SigningKeyMissing(ConfigError):
    code: ClassVar[str] = "keys.missing"


def signing_key_aad(ring: str, kid: str) -> bytes:
    """The AES-GCM associated data of a sealed signing key: it opens only in its own row."""
    return f"jobsts/signing-key/{ring}/{kid}".encode()


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    realm: str
    algorithm: str
    state: str  # the stored state; ``lifecycle.effective_states`` gives the state now
    verification: VerificationKey
    jwk: dict[str, str]
    published_until: int
    created_at: int
    retiring_since: int | None
    activates_at: int | None


@dataclass(slots=True)
class RingKeys:
    generation: int
    keys: tuple[StoredKey, ...]
    privates: dict[str, PrivateKey]  # kid -> private key, for the active and next keys
    checked_at: float
    clock: Callable[[], float]

    @property
    def active(self) -> StoredKey | None:
        """The key that signs now."""
        return self.signer(self.clock())

    @property
    def private(self) -> PrivateKey | None:
        """The private key of the key that signs now."""
        active = self.active
        return None if active is None else self.privates[active.kid]

    def signer(self, now: float) -> StoredKey | None:
        found = lifecycle.signer(self.keys, now)
        return found if found is not None and found.kid in self.privates else None


def load_ring_keys(
    ring: str, generation: int, rows: Sequence[SigningKey], master_key: MasterKey, clock: Callable[[], float]
) -> RingKeys:
    """The ring's keys from its rows; the private keys of the active and next keys are unsealed."""
    keys: list[StoredKey] = []
    private: dict[str, PrivateKey] = {}
    for row in rows:
        pub = VerificationKey(row.kid, row.algorithm, _public_from_jwk(row))
        keys.append(
            StoredKey(
                row.kid,
                ring,
                row.algorithm,
                row.state,
                pub,
                dict(row.public_jwk),
                row.published_until,
                row.created_at,
                row.retiring_since,
                row.activates_at,
            )
        )
        if row.state in ("active", "next") and row.private_key is not None:
            sealed = master_key.decrypt(row.private_key, signing_key_aad(ring, row.kid))
            private[row.kid] = load_sealed_private_key(sealed)
    return RingKeys(generation, tuple(keys), private, clock(), clock)


def _public_from_jwk(row: SigningKey) -> Any:
    key = verification_key_from_jwk(dict(row.public_jwk), frozenset({row.algorithm}))
    if key is None:
        raise SigningKeyMissing(f"realm {row.realm}: stored key {row.kid} is unusable", realm=row.realm)
    return key.public_key
