"""The pinned verifier for every jobsts token profile (RFC 7515, RFC 7519 §7.2, RFC 8725).

Order matters, and each step says which attack it stops. Trust is resolved from the
issuer before any key is looked at; the key is chosen only from that realm's own key set;
the algorithm comes from the key, never from the token.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from realms.errors import AccessIdInvalid, ConfigError
from realms.identity.access_id import AccessId, AccessIdKind
from realms.text import check_tree
from realms.tokens.algorithms import ALGORITHMS, SigningAlgorithm
from realms.tokens.errors import (
    RealmUntrusted,
    TokenAlgorithmRefused,
    TokenAudience,
    TokenClaimInvalid,
    TokenExpired,
    TokenHeaderRefused,
    TokenMalformed,
    TokenNotYetValid,
    TokenSignatureInvalid,
    TokenTypeMismatch,
    TokenUnknownKey,
)
from realms.tokens.jws import b64url_decode, decode_segment, parse_compact, split_compact
from realms.tokens.keys import VerificationKey
from realms.tokens.lifetimes import MAX_LIFETIME_CEILINGS, check_lifetime
from realms.tokens.profiles import MAX_LEEWAY_SECONDS, TokenProfile

# Header members that would let the token choose its own key or extend the rules.
FORBIDDEN_HEADER_MEMBERS = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit"})
DEFAULT_LEEWAY_SECONDS = 30
MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z
# The profiles whose subject is a user access ID of the issuing realm.
_USER_PROFILES = frozenset({"at+jwt", "job+jwt"})
_ABSENT = object()
_STR_ONLY = {str}  # JSON decodes strings as exactly ``str``, never a subclass
_USER = AccessIdKind.USER


@dataclass(frozen=True, slots=True)
class IssuerTrust:
    """What a verifier trusts for one issuer: its realm, the pinned algorithms, and its keys by kid."""

    realm: str
    issuer: str
    algorithms: frozenset[str]
    keys: Mapping[str, VerificationKey] = field(default_factory=dict)
    # The realm's clock-skew allowance, used when the caller of ``verify`` names none.
    leeway: int = DEFAULT_LEEWAY_SECONDS
    # The longest lifetime (seconds) this issuer may give each profile, by ``typ``: the realm's
    # policy at the STS, the policy ceilings (or the agent's tighter setting) at an agent.
    max_lifetimes: Mapping[str, int] = field(default_factory=lambda: MAX_LIFETIME_CEILINGS)


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


@functools.lru_cache(maxsize=4096)
def _subject_id(text: str) -> AccessId | None:
    """``AccessId.parse``, memoised (an access ID is an immutable value); ``None`` when invalid."""
    try:
        return AccessId.parse(text)
    except AccessIdInvalid:
        return None


def _numeric_date(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    if type(value) is int and 0 <= value <= MAX_NUMERIC_DATE:
        return float(value)  # the common case: a whole number of seconds in range
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
    if not claims.keys() >= profile.required_claims:
        missing = sorted(profile.required_claims - claims.keys())[0]
        raise TokenClaimInvalid(f"{profile.name} lacks required claim {missing}", claim=missing)
    for name in profile.string_claims:
        value = claims.get(name, _ABSENT)
        if value is not _ABSENT and (not isinstance(value, str) or not value):
            raise TokenClaimInvalid(f"claim {name} is not a non-empty string", claim=name)
    # Why: strict audience (a single string, equal) stops a token minted for one node or
    # service being replayed at another; lists are refused rather than searched.
    if claims["aud"] != audience:
        raise TokenAudience(f"token is for {str(claims['aud'])[:80]!r}, not {audience!r}", claim="aud")
    exp, nbf, iat = claims["exp"], claims["nbf"], claims["iat"]
    # The common case, whole seconds in range, checked inline; ``_numeric_date`` checks anything else.
    if not (
        type(exp) is type(nbf) is type(iat) is int
        and 0 <= exp <= MAX_NUMERIC_DATE
        and 0 <= nbf <= MAX_NUMERIC_DATE
        and 0 <= iat <= MAX_NUMERIC_DATE
    ):
        exp, nbf, iat = _numeric_date(claims, "exp"), _numeric_date(claims, "nbf"), _numeric_date(claims, "iat")
    if now >= exp + leeway:
        raise TokenExpired(f"{profile.name} expired at {int(exp)}", claim="exp")
    if now + leeway < nbf:
        raise TokenNotYetValid(f"{profile.name} is not valid before {int(nbf)}", claim="nbf")
    if now + leeway < iat:
        raise TokenNotYetValid(f"{profile.name} was issued in the future ({int(iat)})", claim="iat")
    maximum = trust.max_lifetimes.get(profile.typ)
    if maximum is None or exp - iat > maximum + leeway or exp - now > maximum + leeway:
        # The full rule (the ceiling when no maximum is configured), and its refusal.
        check_lifetime(profile, trust.realm, trust.max_lifetimes, exp=exp, iat=iat, now=now, leeway=leeway)
    if "realm" in profile.required_claims and claims["realm"] != trust.realm:
        # Why: the realm claim is what policy reads; it must be the realm whose key signed.
        raise TokenClaimInvalid(f"realm claim {claims['realm']!r} is not the issuing realm", claim="realm")
    if "groups" in profile.required_claims:
        groups = claims["groups"]
        if not isinstance(groups, list) or (groups and set(map(type, groups)) != _STR_ONLY):
            raise TokenClaimInvalid("claim groups is not a list of strings", claim="groups")
    if profile.typ in _USER_PROFILES:
        # Why: a realm may only vouch for its own users; a subject of another realm is an
        # attempt to speak for a principal this issuer does not own.
        subject = _subject_id(claims["sub"])
        if subject is None:
            raise TokenClaimInvalid("claim sub is not an access ID", claim="sub")
        if subject.kind is not _USER or subject.realm != trust.realm:
            raise TokenClaimInvalid(
                f"subject {claims['sub'][:120]!r} is not a user of realm {trust.realm}", claim="sub"
            )


@dataclass(frozen=True, slots=True)
class _HeaderVerdict:
    """A header that passed every header check for one profile, and what the checks read from it."""

    header: dict[str, Any]
    alg: str
    algorithm: SigningAlgorithm
    kid: str


def _check_header(header: dict[str, Any], profile: TokenProfile) -> _HeaderVerdict:
    # Why: "alg" is attacker-chosen. Only the asymmetric algorithms we sign with are ever
    # considered, which stops alg=none (any spelling) and HMAC-with-the-public-key.
    alg = header.get("alg")
    algorithm = ALGORITHMS.get(alg) if isinstance(alg, str) else None
    if algorithm is None or not isinstance(alg, str):
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
    return _HeaderVerdict(header, alg, algorithm, kid)


# Why a cache of header verdicts is safe: the verdict depends only on the header's exact bytes
# (which the signature covers) and the profile, both part of the key, and only headers that
# passed every check are kept. It is bounded because headers arrive before any signature check.
MAX_CACHED_HEADERS = 256
_HEADER_VERDICTS: dict[tuple[str, str], _HeaderVerdict] = {}


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
    header_b64, payload_b64, signature_b64 = split_compact(token)
    verdict = _HEADER_VERDICTS.get((header_b64, profile.typ))
    if verdict is None:
        parsed = parse_compact(token)
        header, claims, signature = parsed.header, parsed.claims, parsed.signature
        suspect_header = suspect_claims = parsed.may_hold_surrogates
    else:
        # The header passed every check before; only the payload and signature are new.
        header = verdict.header
        claims, suspect_claims = decode_segment(payload_b64, "payload")
        signature = b64url_decode(signature_b64, "signature")
        suspect_header = False
    # Why: JSON's "\\ud800" escape decodes to an unpaired surrogate, which no log, database or
    # socket can encode: refuse it here (jti, groups, every string) instead of a 500 later.
    if suspect_header:
        check_tree(header, "token header", lambda m: TokenMalformed(m))
    if suspect_claims:
        check_tree(claims, "claims", lambda m: TokenClaimInvalid(m))
    if verdict is None:
        verdict = _check_header(header, profile)
        if len(_HEADER_VERDICTS) >= MAX_CACHED_HEADERS:
            _HEADER_VERDICTS.clear()
        _HEADER_VERDICTS[(header_b64, profile.typ)] = verdict
    alg, kid = verdict.alg, verdict.kid

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
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    if not verdict.algorithm.verify(signing_input, key.public_key, signature):
        raise TokenSignatureInvalid(f"signature does not verify with realm {trust.realm} key", realm=trust.realm)

    skew = trust.leeway if leeway is None else leeway
    if not 0 <= skew <= MAX_LEEWAY_SECONDS:
        raise ConfigError(f"realm {trust.realm}: leeway {skew}s is outside 0..{MAX_LEEWAY_SECONDS}s", realm=trust.realm)
    _check_claims(claims, profile, trust, audience, skew, time.time() if now is None else now)
    # A copy of the header: the cached one is shared by every token with the same header.
    return VerifiedToken(trust.realm, issuer, kid, dict(verdict.header), claims)
