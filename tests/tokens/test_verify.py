"""The shared pinned verifier (realms.tokens.verify): every rule has a test that fails without it."""

from __future__ import annotations

import base64
import hmac
import json
import math
from hashlib import sha256
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from realms.errors import ConfigError
from realms.identity.access_id import AccessId
from realms.tokens import (
    ACCESS_TOKEN,
    AGENT_TOKEN,
    JOB_TOKEN,
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
    verify,
)
from tests.tokens.conftest import Mint, Realm, StaticResolver, new_private_key


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, signature: bytes = b"sig") -> str:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return f"{b64(h)}.{b64(p)}.{b64(signature)}"


def resign(token: str, realm: Realm) -> str:
    """Re-sign a token's first two segments with the realm's real key (PyJWT's algorithm objects)."""
    import jwt

    signing_input = token.rsplit(".", 1)[0].encode()
    alg = jwt.get_algorithm_by_name(realm.algorithm)
    return f"{signing_input.decode()}.{b64(alg.sign(signing_input, realm.private_key))}"


def check(token: str, resolver: StaticResolver, **kwargs: Any) -> Any:
    return verify(token, JOB_TOKEN, resolver, audience=kwargs.pop("audience", "node1"), **kwargs)


def test_valid_job_token_verifies(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    verified = check(mint(job_claims), resolver)
    assert verified.realm == "jobmgr"
    assert verified.claims["job_id"] == job_claims["job_id"]


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256", "PS256"])
def test_every_signing_algorithm_verifies(algorithm: str, job_claims: dict[str, Any], mint: Mint) -> None:
    realm = Realm("jobmgr", job_claims["iss"], algorithm, new_private_key(algorithm))
    assert check(mint(job_claims, realm=realm), StaticResolver(realm)).kid == realm.key.kid


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None, 0, ["ES256"]])
def test_alg_none_and_junk_algorithms_are_refused(
    alg: Any, job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    token = raw_token({"alg": alg, "typ": "job+jwt", "kid": realm_a.key.kid}, job_claims, b"x")
    with pytest.raises(TokenAlgorithmRefused):
        check(token, resolver)


def test_stripped_signature_is_refused(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    head_and_payload = mint(job_claims).rsplit(".", 1)[0]
    with pytest.raises(TokenMalformed):
        check(head_and_payload + ".", resolver)
    with pytest.raises(TokenMalformed):
        check(head_and_payload, resolver)


@pytest.mark.parametrize("encoding", ["pem", "pem-no-newline", "der", "openssh"])
def test_hmac_signed_with_the_public_key_is_refused(
    encoding: str, job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    public = realm_a.private_key.public_key()
    secret = {
        "pem": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "openssh": public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    }.get(encoding) or public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).rstrip(b"\n")
    unsigned = raw_token({"alg": "HS256", "typ": "job+jwt", "kid": realm_a.key.kid}, job_claims).rsplit(".", 1)[0]
    token = f"{unsigned}.{b64(hmac.new(secret, unsigned.encode(), sha256).digest())}"
    with pytest.raises(TokenAlgorithmRefused):
        check(token, resolver)


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c", "crit"])
def test_header_members_that_choose_a_key_are_refused(
    member: str, mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    value: Any = (
        ["exp"] if member in ("crit", "x5c") else ({"kty": "EC"} if member == "jwk" else "http://127.0.0.1:9/k")
    )
    with pytest.raises(TokenHeaderRefused):
        check(mint(job_claims, **{member: value}), resolver)


@pytest.mark.parametrize("typ", ["at+jwt", "agent+jwt", "JWT", None, "", "job+jwt+x"])
def test_profile_confusion_is_refused(
    typ: Any, mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    with pytest.raises(TokenTypeMismatch):
        check(mint(job_claims, typ=typ), resolver)


def test_typ_compares_without_case_or_media_prefix(
    mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    assert check(mint(job_claims, typ="application/JOB+JWT"), resolver).realm == "jobmgr"


@pytest.mark.parametrize("kid", ["../../etc/passwd", "' OR 1=1 --", "$(id)", "k" * 129, 7, None, ["a"], ""])
def test_kid_injection_and_junk_kids_are_refused(
    kid: Any, mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    with pytest.raises(TokenUnknownKey):
        check(mint(job_claims, kid=kid), resolver)


def test_unknown_kid_asks_for_one_refetch(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    with pytest.raises(TokenUnknownKey):
        check(mint(job_claims, kid="rotated-away"), resolver)
    assert resolver.refetches == 1


def test_refetched_keys_are_used(mint: Mint, job_claims: dict[str, Any], realm_a: Realm) -> None:
    resolver = StaticResolver(Realm("jobmgr", realm_a.issuer, "ES256", new_private_key("ES256")))
    resolver.refreshed[realm_a.issuer] = realm_a.trust()
    assert check(mint(job_claims), resolver).kid == realm_a.key.kid


def test_untrusted_issuer_is_refused_before_any_key(mint: Mint, job_claims: dict[str, Any], realm_a: Realm) -> None:
    resolver = StaticResolver()  # trusts nothing
    with pytest.raises(RealmUntrusted):
        check(mint(job_claims), resolver)
    assert resolver.refetches == 0


def test_realm_a_token_signed_with_realm_b_key_is_refused(
    mint: Mint, job_claims: dict[str, Any], realm_b: Realm, resolver: StaticResolver
) -> None:
    # Claims say realm A (jobmgr); signed by realm B with B's kid: B's key is never consulted for A.
    with pytest.raises(TokenUnknownKey):
        check(mint(job_claims, realm=realm_b), resolver)


def test_kid_present_in_both_realms_uses_the_issuers_key(
    job_claims: dict[str, Any], mint: Mint, realm_a: Realm, realm_b: Realm
) -> None:
    # Realm A publishes realm B's key under a kid that also exists in B; a token claiming A and
    # signed by B must still be checked with A's key for that kid only, never B's.
    shared_kid = realm_b.key.kid
    realm_a.extra_keys[shared_kid] = realm_a.key.__class__(shared_kid, "ES256", realm_a.private_key.public_key())
    token = mint(job_claims, realm=realm_b)
    with pytest.raises(TokenSignatureInvalid):
        check(token, StaticResolver(realm_a, realm_b))


def test_realm_vouching_for_another_realms_user_is_refused(
    mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    job_claims["sub"] = "user:cellB/uid=bob,ou=people,dc=cellb,dc=example"
    with pytest.raises(TokenClaimInvalid) as info:
        check(mint(job_claims), resolver)
    assert info.value.data["claim"] == "sub"


def test_realm_claim_must_be_the_issuing_realm(
    mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    job_claims["realm"] = "cellB"
    with pytest.raises(TokenClaimInvalid):
        check(mint(job_claims), resolver)


def test_groups_of_other_realms_are_dropped(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    job_claims["groups"] += ["group:cellB/cn=cell-admins,ou=groups,dc=cellb,dc=example", "not an access id"]
    groups = check(mint(job_claims), resolver).vouched_groups()
    assert groups == {AccessId.parse(job_claims["groups"][0])}


def test_tampered_payload_is_refused(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    header, _, signature = mint(job_claims).split(".")
    forged = dict(job_claims, sub="user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example")
    with pytest.raises(TokenSignatureInvalid):
        check(f"{header}.{b64(json.dumps(forged).encode())}.{signature}", resolver)


def test_expired_and_not_yet_valid(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    now = job_claims["iat"]
    with pytest.raises(TokenExpired):
        check(mint(job_claims), resolver, now=job_claims["exp"] + 31)
    assert check(mint(job_claims), resolver, now=job_claims["exp"] + 29)  # inside the leeway
    with pytest.raises(TokenNotYetValid):
        check(mint(dict(job_claims, nbf=now + 120)), resolver, now=now)
    with pytest.raises(TokenNotYetValid):
        check(mint(dict(job_claims, iat=now + 120)), resolver, now=now)


def test_leeway_is_bounded(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    with pytest.raises(ConfigError):
        check(mint(job_claims), resolver, leeway=3600)


@pytest.mark.parametrize("aud", ["node2", ["node1"], ["node1", "node2"], "", None, "NODE1"])
def test_audience_is_strict(aud: Any, mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    with pytest.raises(TokenAudience):
        check(mint(dict(job_claims, aud=aud)), resolver)


@pytest.mark.parametrize("claim", sorted(JOB_TOKEN.required_claims - {"iss"}))
def test_every_required_claim_is_required(
    claim: str, mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    del job_claims[claim]
    with pytest.raises(TokenClaimInvalid) as info:
        check(mint(job_claims), resolver)
    assert info.value.data["claim"] == claim


@pytest.mark.parametrize("value", [True, "1700000000", 1e300, -1, 2**63, None, [1]])
@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
def test_numeric_dates_must_be_sane_numbers(
    name: str, value: Any, job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    token = resign(
        raw_token({"alg": "ES256", "typ": "job+jwt", "kid": realm_a.key.kid}, dict(job_claims, **{name: value})),
        realm_a,
    )
    with pytest.raises(TokenClaimInvalid):
        check(token, resolver)


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_json_constants_are_refused(
    constant: str, job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    payload = json.dumps(dict(job_claims, exp=math.inf)).replace("Infinity", constant).encode()
    token = resign(raw_token({"alg": "ES256", "typ": "job+jwt", "kid": realm_a.key.kid}, payload), realm_a)
    with pytest.raises(TokenMalformed):
        check(token, resolver)


def test_duplicate_json_members_are_refused(
    job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    payload = json.dumps(job_claims)[:-1] + ', "sub": "user:jobmgr/uid=admin"}'
    token = resign(raw_token({"alg": "ES256", "typ": "job+jwt", "kid": realm_a.key.kid}, payload.encode()), realm_a)
    with pytest.raises(TokenMalformed, match="duplicate"):
        check(token, resolver)


def test_duplicate_header_members_are_refused(
    job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    header = f'{{"alg": "ES256", "typ": "job+jwt", "kid": "{realm_a.key.kid}", "alg": "none"}}'.encode()
    with pytest.raises(TokenMalformed, match="duplicate"):
        check(resign(raw_token(header, job_claims), realm_a), resolver)


def test_invalid_utf8_is_refused(job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver) -> None:
    payload = json.dumps(job_claims).encode().replace(b"john", b"jo\xffn")
    token = resign(raw_token({"alg": "ES256", "typ": "job+jwt", "kid": realm_a.key.kid}, payload), realm_a)
    with pytest.raises(TokenMalformed, match="UTF-8"):
        check(token, resolver)


def test_non_canonical_base64url_is_refused(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    header, payload, signature = mint(job_claims).split(".")
    for bad in (
        f"{header}=.{payload}.{signature}",
        f"{header}.{payload}+.{signature}",
        f"{header}.{payload}.{signature}==",
    ):
        with pytest.raises(TokenMalformed):
            check(bad, resolver)
    # Same bytes, different trailing bits: must not verify as the same token.
    last = signature[-1]
    twin = signature[:-1] + ("B" if last == "A" else "A") if len(signature) % 4 == 2 else signature
    if twin != signature:
        with pytest.raises((TokenMalformed, TokenSignatureInvalid)):
            check(f"{header}.{payload}.{twin}", resolver)


def test_oversized_and_deeply_nested_tokens_are_refused(
    job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    huge = raw_token({"alg": "ES256", "typ": "job+jwt", "kid": realm_a.key.kid}, dict(job_claims, pad="x" * 2**20))
    with pytest.raises(TokenMalformed, match="longer"):
        check(huge, resolver)
    nested = b'{"a":' * 5000 + b"1" + b"}" * 5000
    with pytest.raises(TokenMalformed):
        check(raw_token({"alg": "ES256", "typ": "job+jwt", "kid": realm_a.key.kid}, nested[:12000]), resolver)
    shallow_but_too_deep = json.dumps(dict(job_claims, x=[[[[[[[[[[1]]]]]]]]]])).encode()
    token = resign(raw_token({"alg": "ES256", "typ": "job+jwt", "kid": realm_a.key.kid}, shallow_but_too_deep), realm_a)
    with pytest.raises(TokenMalformed, match="nested"):
        check(token, resolver)


@pytest.mark.parametrize("junk", ["", "a", "a.b", "a.b.c.d", "....", "é.é.é", 12, None])
def test_structural_junk_is_malformed(junk: Any, resolver: StaticResolver) -> None:
    with pytest.raises(TokenMalformed):
        check(junk, resolver)


def test_key_pinned_to_its_algorithm(job_claims: dict[str, Any], mint: Mint) -> None:
    # An RS256 key presented with PS256 (both allowed for the realm) is refused: alg comes from the key.
    realm = Realm("jobmgr", job_claims["iss"], "RS256", new_private_key("RS256"))
    trust_algs = StaticResolver(realm)
    original = realm.trust

    def both_algs() -> Any:
        trust = original()
        return trust.__class__(trust.realm, trust.issuer, frozenset({"RS256", "PS256"}), trust.keys)

    realm.trust = both_algs  # type: ignore[method-assign]
    ps = Realm("jobmgr", job_claims["iss"], "PS256", realm.private_key)
    with pytest.raises(TokenAlgorithmRefused):
        check(mint(job_claims, realm=ps), trust_algs)


def test_access_and_agent_profiles(mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver) -> None:
    access = {k: v for k, v in job_claims.items() if k not in ("job_id", "job_digest")}
    access["aud"] = "https://sts.test"
    assert verify(mint(access, typ="at+jwt"), ACCESS_TOKEN, resolver, audience="https://sts.test").realm == "jobmgr"
    agent = {k: access[k] for k in ("iss", "aud", "iat", "nbf", "exp", "jti")} | {
        "sub": "node:node1",
        "cnf": {"jkt": "x"},
    }
    verified = verify(mint(agent, typ="agent+jwt"), AGENT_TOKEN, resolver, audience="https://sts.test")
    assert verified.subject == "node:node1"
    with pytest.raises(TokenTypeMismatch):
        verify(mint(agent, typ="agent+jwt"), ACCESS_TOKEN, resolver, audience="https://sts.test")


def test_the_issuing_realms_leeway_applies_when_the_caller_names_none(
    mint: Mint, job_claims: dict[str, Any], realm_a: Realm
) -> None:
    strict = realm_a.trust().__class__(
        realm_a.name, realm_a.issuer, frozenset({"ES256"}), {realm_a.key.kid: realm_a.key}, leeway=5
    )

    class StrictResolver(StaticResolver):
        def issuer_trust(self, issuer: str) -> Any:
            return strict if issuer == realm_a.issuer else None

    token = mint(job_claims)
    with pytest.raises(TokenExpired):
        verify(token, JOB_TOKEN, StrictResolver(), audience="node1", now=job_claims["exp"] + 10)
    # An explicit leeway from the caller (the agent's configuration) wins.
    assert verify(token, JOB_TOKEN, StrictResolver(), audience="node1", leeway=30, now=job_claims["exp"] + 10)
    loose = strict.__class__(strict.realm, strict.issuer, strict.algorithms, strict.keys, leeway=3600)

    class LooseResolver(StaticResolver):
        def issuer_trust(self, issuer: str) -> Any:
            return loose

    with pytest.raises(ConfigError):
        verify(token, JOB_TOKEN, LooseResolver(), audience="node1")
