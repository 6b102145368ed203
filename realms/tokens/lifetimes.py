"""The maximum lifetime of each token profile, enforced at verification (RFC 8725 §3.10, RFC 9068 §4).

A signature proves who issued a token, not that the issuer meant it to live for years: a
leaked or mis-minted token with ``exp`` far ahead would otherwise be good until then. Each
profile has a ceiling (the largest lifetime a realm policy may configure); the STS verifies
with its realm's own policy, an agent with the ceilings or its own tighter per-realm setting.
"""

from __future__ import annotations

from collections.abc import Mapping

from realms.tokens.errors import TokenLifetimeExceeded
from realms.tokens.profiles import TokenProfile

# The highest value a realm's [token] table accepts for each profile's lifetime, by ``typ``.
ACCESS_TOKEN_CEILING = 3600
AGENT_TOKEN_CEILING = 3600
JOB_TOKEN_CEILING = 90 * 86400
MAX_LIFETIME_CEILINGS: Mapping[str, int] = {
    "at+jwt": ACCESS_TOKEN_CEILING,
    "agent+jwt": AGENT_TOKEN_CEILING,
    "job+jwt": JOB_TOKEN_CEILING,
}


def lifetimes(*, access: int, agent: int, job: int) -> dict[str, int]:
    """The ``max_lifetimes`` mapping of an ``IssuerTrust`` from a realm policy's three values."""
    return {"at+jwt": access, "agent+jwt": agent, "job+jwt": job}


def check_lifetime(
    profile: TokenProfile,
    realm: str,
    max_lifetimes: Mapping[str, int],
    *,
    exp: float,
    iat: float,
    now: float,
    leeway: int,
) -> None:
    """Raise ``token.lifetime`` if the token was issued for, or still has, more than the maximum."""
    # Why: a profile with no configured maximum falls back to its ceiling, never to "unbounded".
    maximum = max_lifetimes.get(profile.typ, MAX_LIFETIME_CEILINGS.get(profile.typ, ACCESS_TOKEN_CEILING))
    if exp - iat > maximum + leeway:
        raise TokenLifetimeExceeded(
            f"{profile.name} lives {int(exp - iat)}s; realm {realm} allows at most {maximum}s",
            claim="exp",
            realm=realm,
        )
    if exp - now > maximum + leeway:
        raise TokenLifetimeExceeded(
            f"{profile.name} is valid for {int(exp - now)}s more; realm {realm} allows at most {maximum}s",
            claim="exp",
            realm=realm,
        )
