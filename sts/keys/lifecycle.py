"""The signing-key lifecycle as pure functions of the stored rows and the time.

A key is ``next`` (pre-published: in the key set, does not sign yet), ``active`` (signs;
one per key ring at any instant), ``retiring`` (no longer signs, still published) or
``retired`` (unpublished, private key wiped). The stored state lags: a ``next`` key whose
``activates_at`` has passed *is* the signer in every process at once, without a write,
and the one it replaced is retiring from that instant. ``KeyStore.settle`` writes the
states down later (housekeeping, ``jobsts keys``).

How long a retiring key stays published is bounded by policy, not by a write per token:
every token lives at most the realm's longest token lifetime (the verifier refuses a longer
one, ``realms.tokens.lifetimes``), so a key that stopped signing at ``t`` has no valid token
left after ``t + RETIRE_GRACE_SECONDS + max_token_lifetime``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from realms.config import TokenPolicy

KEY_STATES = ("next", "active", "retiring", "retired")
# Another process may still sign with the previous key for up to its cache interval (1 s)
# after a rotation; the grace covers that, and clock skew between STS hosts.
RETIRE_GRACE_SECONDS = 60
# The key set's Cache-Control max-age is half the pre-publication time, so that a cache
# filled just before a new key appeared has expired, with margin, when that key signs.
MIN_JWKS_MAX_AGE = 0
MAX_JWKS_MAX_AGE = 86400


class KeyRow(Protocol):
    """What the lifecycle reads of a key (a stored row, or the store's cached copy)."""

    @property
    def kid(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def created_at(self) -> int: ...
    @property
    def activates_at(self) -> int | None: ...


Row = TypeVar("Row", bound=KeyRow)


def signs_from(row: KeyRow) -> int:
    """When the key starts (or started) to sign: its scheduled activation, else its creation."""
    return row.activates_at if row.activates_at is not None else row.created_at


def max_token_lifetime(policy: TokenPolicy) -> int:
    """The longest a token of the realm can be valid: ID tokens live as access tokens."""
    return max(policy.max_lifetimes().values())


def published_until(stops_signing: int, policy: TokenPolicy) -> int:
    """The last instant (before leeway) a token signed by a key that stops signing then can be presented."""
    return stops_signing + RETIRE_GRACE_SECONDS + max_token_lifetime(policy)


def signer(rows: Iterable[Row], now: float) -> Row | None:
    """The key that signs at ``now``: the latest-activated ``active`` or ``next`` key whose time has come
    (or, when none has, the first to come)."""
    candidates = [r for r in rows if r.state in ("active", "next")]
    due = [r for r in candidates if signs_from(r) <= now]
    if not due:
        # A ring's first key, seen from a host whose clock is behind the one that made it.
        return min(candidates, key=lambda r: (signs_from(r), r.created_at), default=None)
    return max(due, key=lambda r: (signs_from(r), r.created_at))


def effective_states(rows: Sequence[KeyRow], now: float) -> dict[str, str]:
    """Each key's state at ``now``, whatever state is stored."""
    current = signer(rows, now)
    states: dict[str, str] = {}
    for row in rows:
        if row.state in ("active", "next"):
            if current is not None and row.kid == current.kid:
                states[row.kid] = "active"
            elif signs_from(row) > now:
                states[row.kid] = "next"
            else:
                states[row.kid] = "retiring"
        else:
            states[row.kid] = row.state
    return states


def jwks_max_age(policy: TokenPolicy) -> int:
    """Cache-Control max-age of the realm's key set, derived from the pre-publication time."""
    return max(MIN_JWKS_MAX_AGE, min(MAX_JWKS_MAX_AGE, policy.key_prepublish_seconds // 2))


def rotation_due(current: KeyRow | None, pending: bool, policy: TokenPolicy, now: float) -> bool:
    """Automatic rotation: schedule a successor so it signs ``key_rotation_days`` after the current key began."""
    if policy.key_rotation_days <= 0 or pending:
        return False
    if current is None:
        return True
    return signs_from(current) + policy.key_rotation_days * 86400 - policy.key_prepublish_seconds <= now
