"""The pinned verifier for every jobsts token profile (RFC 7515, RFC 7519 §7.2, RFC 8725).

Order matters, and each step says which attack it stops. Trust is resolved from the
issuer before any key is looked at; the key is chosen only from that realm's own key set;
the algorithm comes from the key, never from the token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from realms.errors import AccessIdInvalid, ConfigError
from realms.identity.access_id import AccessId, AccessIdKind
from realms.tokens.algorithms import ALGORITHMS
from realms.tokens.errors import (
    RealmUntrusted,
    TokenAlgorithmRefused,
    TokenAudience,
    TokenClaimInvalid,
    TokenExpired,
    TokenHeaderRefused,
    TokenNotYetValid,
    TokenSignatureInvalid,
    TokenTypeMismatch,
    TokenUnknownKey,
)
from realms.tokens.jws import parse_compact
from realms.tokens.keys import VerificationKey
from realms.tokens.profiles import MAX_LEEWAY_SECONDS, TokenProfile

# Header members that would let the token choose its own key or extend the rules.
FORBIDDEN_HEADER_MEMBERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit"})
DEFAULT_LEEWAY_SECONDS = 30
MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True, slots=True)
class IssuerTrust:
    """What a verifier trusts for one issuer: its realm, the pinned algorithms, and its keys by kid."""

    realm: str
    issuer: str
    algorithms: frozenset[str]
    keys: Mapping[str, VerificationKey] = field(default_factory=dict)
    # The realm's clock-skew allowance, used when the caller of ``verify`` names none.
    leeway: int = DEFAULT_LEEWAY_SECONDS


class TrustResolver(Protocol):
    """Where a verifier's trust comes from: the STS's own key store, or an agent's trust store."""

    def issuer_trust(self, issuer: str) -> IssuerTrust | None:
        """The trust for ``issuer``, or ``None`` if this verifier does not trust it."""

    def refreshed_trust(self, issuer: str) -> IssuerTrust | None:
        """After an unknown kid: fresh trust if a (rate-limited) refetch is allowed, else ``None``."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    realm: str
    issuer: str
    kid: str
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    def vouched_groups(self) -> frozenset[AccessId]:
        """The group access IDs of the issuing realm. A realm may vouch only for its own
        principals, so groups of other realms (or unparsable ones) are dropped, never trusted."""
        kept: set[AccessId] = set()
        for text in self.claims.get("groups", []):
            try:
                group = AccessId.parse(text)
            except AccessIdInvalid:
                continue
            if group.kind is AccessIdKind.GROUP and group.realm == self.realm:
                kept.add(group)
        return frozenset(kept)


def _numeric_date(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    # Why: bool is an int in Python, and strings, NaN or infinity would make "expired" comparisons
    # silently false; a NumericDate must be a finite number in a sane range (RFC 7519 §2).
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenClaimInvalid(f"claim {name} is not a NumericDate", claim=name)
    if not 0 <= value <= MAX_NUMERIC_DATE:
        raise TokenClaimInvalid(f"claim {name} is out of range", claim=name)
    return float(value)


def _check_claims(
    claims: dict[str, Any], profile: TokenProfile, trust: IssuerTrust, audience: str, leeway: int, now: float
) -> None:
    for name in sorted(profile.required_claims):
        if name not in claims:
            raise TokenClaimInvalid(f"{profile.name} lacks required claim {name}", claim=name)
    for name in profile.string_claims:
        if name in claims and (not isinstance(claims[name], str) or not claims[name]):
            raise TokenClaimInvalid(f"claim {name} is not a non-empty string", claim=name)
    # Why: strict audience (a single string, equal) stops a token minted for one node or
    # service being replayed at another; lists are refused rather than searched.
    if claims["aud"] != audience:
        raise TokenAudience(f"token is for {str(claims['aud'])[:80]!r}, not {audience!r}", claim="aud")
    exp, nbf, iat = (_numeric_date(claims, n) for n in ("exp", "nbf", "iat"))
    if now >= exp + leeway:
        raise TokenExpired(f"{profile.name} expired at {int(exp)}", claim="exp")
    if now + leeway < nbf:
        raise TokenNotYetValid(f"{profile.name} is not valid before {int(nbf)}", claim="nbf")
    if now + leeway < iat:
        raise TokenNotYetValid(f"{profile.name} was issued in the future ({int(iat)})", claim="iat")
    if "realm" in profile.required_claims and claims["realm"] != trust.realm:
        # Why: the realm claim is what policy reads; it must be the realm whose key signed.
        raise TokenClaimInvalid(f"realm claim {claims['realm']!r} is not the issuing realm", claim="realm")
    if "groups" in profile.required_claims:
        groups = claims["groups"]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise TokenClaimInvalid("claim groups is not a list of strings", claim="groups")
    if profile.typ in ("at+jwt", "job+jwt"):
        # Why: a realm may only vouch for its own users; a subject of another realm is an
        # attempt to speak for a principal this issuer does not own.
        try:
            subject = AccessId.parse(claims["sub"])
        except AccessIdInvalid:
            raise TokenClaimInvalid("claim sub is not an access ID", claim="sub") from None
        if subject.kind is not AccessIdKind.USER or subject.realm != trust.realm:
            raise TokenClaimInvalid(
                f"subject {claims['sub'][:120]!r} is not a user of realm {trust.realm}", claim="sub"
            )


def verify(
    token: str | bytes,
    profile: TokenProfile,
    resolver: TrustResolver,
    *,
    audience: str,
    leeway: int | None = None,
    now: float | None = None,
) -> VerifiedToken:
    """Verify ``token`` as ``profile`` for ``audience``; raise a ``TokenError`` subclass on refusal."""
    if leeway is not None and not 0 <= leeway <= MAX_LEEWAY_SECONDS:
        raise ConfigError(f"leeway {leeway}s is outside 0..{MAX_LEEWAY_SECONDS}s")
    parsed = parse_compact(token)
    header, claims = parsed.header, parsed.claims

    # Why: "alg" is attacker-chosen. Only the asymmetric algorithms we sign with are ever
    # considered, which stops alg=none (any spelling) and HMAC-with-the-public-key.
    alg = header.get("alg")
    algorithm = ALGORITHMS.get(alg) if isinstance(alg, str) else None
    if algorithm is None:
        raise TokenAlgorithmRefused(f"algorithm {str(alg)[:20]!r} is not accepted")
    # Why: embedded keys and key URLs (jwk, jku, x5u, x5c) would let the token pick the key
    # that verifies it; crit names extensions we do not implement (RFC 7515 §4.1.11).
    forbidden = FORBIDDEN_HEADER_MEMBERS & header.keys()
    if forbidden:
        raise TokenHeaderRefused(f"header member {sorted(forbidden)[0]!r} is not accepted")
    # Why: typ separates profiles, so a login token cannot be presented as a job token or
    # an agent token (RFC 8725 §3.11). Compared without case and without "application/".
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != profile.typ:
        raise TokenTypeMismatch(f"token type {str(typ)[:30]!r} is not {profile.typ}", claim="typ")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 128:
        raise TokenUnknownKey("token has no usable kid")

    # Why: trust is resolved from the issuer before any key is chosen, so realm B's keys can
    # never verify a token that claims realm A (cross-realm key confusion).
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise TokenClaimInvalid("token has no issuer", claim="iss")
    trust = resolver.issuer_trust(issuer)
    if trust is None:
        raise RealmUntrusted(f"issuer {issuer[:120]!r} is not a trusted realm here", claim="iss")
    if alg not in trust.algorithms:
        raise TokenAlgorithmRefused(f"realm {trust.realm} does not sign with {alg}", realm=trust.realm)
    key = trust.keys.get(kid)
    if key is None:
        refreshed = resolver.refreshed_trust(issuer)
        if refreshed is not None:
            trust, key = refreshed, refreshed.keys.get(kid)
    if key is None:
        raise TokenUnknownKey(f"realm {trust.realm} has no key {kid[:64]!r}", realm=trust.realm)
    # Why: the key is pinned to one algorithm; a token naming another is refused even if
    # that algorithm is allowed for the realm (RS256 key used as PS256, and so on).
    if key.algorithm != alg:
        raise TokenAlgorithmRefused(f"key {kid} is for {key.algorithm}, not {alg}", realm=trust.realm)
    if not algorithm.verify(parsed.signing_input, key.public_key, parsed.signature):
        raise TokenSignatureInvalid(f"signature does not verify with realm {trust.realm} key", realm=trust.realm)

    skew = trust.leeway if leeway is None else leeway
    if not 0 <= skew <= MAX_LEEWAY_SECONDS:
        raise ConfigError(f"realm {trust.realm}: leeway {skew}s is outside 0..{MAX_LEEWAY_SECONDS}s", realm=trust.realm)
    _check_claims(claims, profile, trust, audience, skew, time.time() if now is None else now)
    return VerifiedToken(realm=trust.realm, issuer=issuer, kid=kid, header=header, claims=claims)
