"""What the verifier reuses or skips never weakens a check: the header verdict cached per exact
header bytes and profile, the surrogate walk skipped only when no escape can make one, the
base64url round of checks, and the spec's canonical bytes encoded once for the job digest."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from realms.tokens import ACCESS_TOKEN, JOB_TOKEN, TokenClaimInvalid, TokenMalformed, TokenTypeMismatch, verify
from realms.tokens.algorithms import ALGORITHMS, EcdsaAlgorithm
from realms.tokens.errors import TokenExpired, TokenLifetimeExceeded, TokenNotYetValid, TokenSignatureInvalid
from realms.tokens.jws import (
    MAX_JSON_DEPTH,
    MAX_TOKEN_BYTES,
    b64url_decode,
    decode_segment,
    may_hold_surrogates,
    split_compact,
)
from realms.tokens.lifetimes import JOB_TOKEN_CEILING
from realms.tokens.verify import MAX_NUMERIC_DATE, IssuerTrust
from realms.wire.digest import canonical_json, job_digest
from realms.wire.spec import parse_spec
from tests.tokens.conftest import Mint, Realm, StaticResolver
from tests.tokens.test_verify import raw_token, resign


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_cached_header_verdict_is_per_profile(
    mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    token = mint(job_claims)
    assert verify(token, JOB_TOKEN, resolver, audience="node1").realm == "jobmgr"
    # The same header bytes, now presented as an access token: refused, not served from the cache.
    with pytest.raises(TokenTypeMismatch):
        verify(token, ACCESS_TOKEN, resolver, audience="node1")


def test_a_cached_header_never_spares_the_payload_its_checks(
    mint: Mint, job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    token = mint(job_claims)
    header, payload, signature = token.split(".")
    verify(token, JOB_TOKEN, resolver, audience="node1")  # the header is now cached
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["sub"] = tampered["sub"].replace("john", "root")
    with pytest.raises(TokenSignatureInvalid):
        verify(f"{header}.{_b64(json.dumps(tampered).encode())}.{signature}", JOB_TOKEN, resolver, audience="node1")
    # Validly signed under the cached header, but a claim holds an unpaired surrogate.
    surrogate = json.dumps(dict(job_claims, jti="ab\\ud800cd")).replace("\\\\ud800", "\\ud800").encode()
    signed = resign(f"{header}.{_b64(surrogate)}.x", realm_a)
    with pytest.raises(TokenClaimInvalid, match="surrogate"):
        verify(signed, JOB_TOKEN, resolver, audience="node1")
    duplicate = json.dumps(job_claims)[:-1].encode() + b', "jti": "again"}'
    with pytest.raises(TokenMalformed, match="duplicate"):
        verify(resign(f"{header}.{_b64(duplicate)}.x", realm_a), JOB_TOKEN, resolver, audience="node1")


def test_the_returned_header_is_the_callers_own(
    mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    token = mint(job_claims)
    first = verify(token, JOB_TOKEN, resolver, audience="node1")
    first.header["kid"] = "changed"
    assert verify(token, JOB_TOKEN, resolver, audience="node1").header["kid"] != "changed"


def test_a_surrogate_in_the_header_is_refused(
    job_claims: dict[str, Any], realm_a: Realm, resolver: StaticResolver
) -> None:
    header = b'{"alg":"ES256","typ":"job+jwt","kid":"%s","x":"\\udc00"}' % realm_a.key.kid.encode()
    token = resign(raw_token(header, job_claims), realm_a)
    with pytest.raises(TokenMalformed, match="surrogate"):
        verify(token, JOB_TOKEN, resolver, audience="node1")


def test_none_is_refused_with_the_projects_error(resolver: StaticResolver) -> None:
    with pytest.raises(TokenMalformed):
        verify(None, JOB_TOKEN, resolver, audience="node1")  # type: ignore[arg-type]


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_surrogates_are_suspected_whenever_json_can_decode_one(text: str) -> None:
    encoded = json.dumps(text, ensure_ascii=True)  # every non-ASCII character as an escape
    decoded = json.loads(encoded)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in decoded):
        assert may_hold_surrogates(encoded)


@given(st.integers(min_value=0xD800, max_value=0xDFFF), st.text(max_size=5))
def test_every_lone_surrogate_escape_is_suspected(code: int, around: str) -> None:
    for spelling in (f"\\u{code:04x}", f"\\u{code:04X}"):
        assert may_hold_surrogates(json.dumps(around) + spelling)


_CANONICAL_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@given(st.text(max_size=12))
def test_base64url_accepts_exactly_the_canonical_spellings(segment: str) -> None:
    canonical = (
        "=" not in segment
        and _CANONICAL_B64URL.fullmatch(segment) is not None
        and len(segment) % 4 != 1
        and _b64(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))) == segment
    )
    try:
        decoded = b64url_decode(segment, "segment")
    except TokenMalformed:
        assert not canonical
    else:
        assert canonical and _b64(decoded) == segment


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_canonical_json_is_json_dumps_with_the_canonical_options(value: dict[str, Any]) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        assert canonical_json(value) == expected.encode("utf-8")
    except UnicodeEncodeError:
        pass  # a lone surrogate: both refuse to encode it


arguments = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\x00="), min_size=1, max_size=12)


@given(
    st.lists(arguments, min_size=1, max_size=4),
    st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True), arguments, max_size=3),
    st.text(min_size=1, max_size=8),
)
def test_the_spec_digest_from_its_canonical_bytes_is_the_job_digest(
    argv: list[str], env: dict[str, str], job_id: str
) -> None:
    spec = parse_spec({"argv": argv, "env": env, "timeout": 60})
    assert spec.digest(job_id, "node1", "run") == job_digest(job_id, "node1", "run", spec.as_document())


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ('{"a":1}', True),
        (' {"a":1}', True),
        ('{"a":1} ', True),
        ('\n{"a": 1}\n', True),
        ('{"a":1}x', False),
        ('{"a":1}{"b":2}', False),
        ("", False),
        (" ", False),
        ("[1]", False),
        ('{"a":NaN}', False),
        ('{"a":1,"a":1}', False),
    ],
)
def test_the_scanner_shortcut_decides_as_the_full_decoder(text: str, accepted: bool) -> None:
    segment = _b64(text.encode())
    try:
        decode_segment(segment, "payload")
    except TokenMalformed:
        assert not accepted
    else:
        assert accepted


# --- the fast paths of the agent's per-token work (bench/agent_decide.py) ------------------------

_P384 = EcdsaAlgorithm("ES384", ec.SECP384R1(), "P-384", hashes.SHA384())


@pytest.mark.parametrize("algorithm", [ALGORITHMS["ES256"], _P384], ids=["ES256", "ES384"])
@pytest.mark.parametrize("r_first", [0x00, 0x01, 0x7F, 0x80, 0xFF])
@pytest.mark.parametrize("s_first", [0x00, 0x01, 0x7F, 0x80, 0xFF])
def test_the_der_of_r_and_s_is_encode_dss_signatures(algorithm: EcdsaAlgorithm, r_first: int, s_first: int) -> None:
    half = algorithm._half
    for _ in range(8):
        raw = bytes([r_first]) + os.urandom(half - 1) + bytes([s_first]) + os.urandom(half - 1)
        expected = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        assert algorithm._der(raw) == expected


@pytest.mark.parametrize("algorithm", [ALGORITHMS["ES256"], _P384], ids=["ES256", "ES384"])
def test_every_altered_signature_is_refused(algorithm: EcdsaAlgorithm) -> None:
    message = b"header.payload"
    private = algorithm.generate()
    public = private.public_key()
    for _ in range(4):  # r and s with and without their high bit, across signatures
        raw = algorithm.sign_pinned(message, private)
        assert algorithm.verify(message, public, raw)
        half = algorithm._half
        for index in (0, 1, half - 1, half, half + 1, 2 * half - 1):
            for flip in (0x01, 0x80):
                altered = bytearray(raw)
                altered[index] ^= flip
                assert not algorithm.verify(message, public, bytes(altered))
        assert not algorithm.verify(message, public, b"\0" + raw[1:half] + raw[half:])
        assert not algorithm.verify(message + b".", public, raw)


def test_the_key_check_still_refuses_what_is_not_an_ec_key_of_the_curve() -> None:
    es256 = ALGORITHMS["ES256"]
    message, private = b"header.payload", ec.generate_private_key(ec.SECP256R1())
    raw = es256.sign_pinned(message, private)
    assert es256.verify(message, private.public_key(), raw)
    assert not es256.verify(message, private, raw)  # a private key is not a verification key
    assert not es256.verify(message, ed25519.Ed25519PrivateKey.generate().public_key(), raw)
    assert not es256.verify(message, ec.generate_private_key(ec.SECP384R1()).public_key(), raw)


@pytest.mark.parametrize(
    "token",
    [
        "a.b",
        "a.b.c.d",
        ".b.c",
        "a..c",
        "a.b.",
        "",
        "...",
        "a.b.c" + "x" * MAX_TOKEN_BYTES,
        7,
        None,
        b"a.b",
        b"\xff.b.c",
    ],
)
def test_the_split_shortcut_refuses_every_other_shape(token: Any) -> None:
    with pytest.raises(TokenMalformed):
        split_compact(token)


def test_the_split_shortcut_and_bytes_agree() -> None:
    assert split_compact("a.b.c") == split_compact(b"a.b.c") == ("a", "b", "c")


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", True), ("exp", 1.5e300), ("exp", 1e13), ("exp", -1), ("exp", "2000000000"), ("exp", None),
     ("nbf", MAX_NUMERIC_DATE + 1), ("iat", False), ("iat", [1])],
)  # fmt: skip
def test_numeric_dates_off_the_common_case_are_still_refused(
    mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver, claim: str, value: Any
) -> None:
    # The same header and a good token first, so the header verdict is cached.
    verify(mint(job_claims), JOB_TOKEN, resolver, audience="node1")
    claims = dict(job_claims, **{claim: value})
    with pytest.raises(TokenClaimInvalid, match=claim):
        verify(mint(claims), JOB_TOKEN, resolver, audience="node1")


def test_whole_second_dates_still_decide_expiry_and_not_before(
    mint: Mint, job_claims: dict[str, Any], resolver: StaticResolver
) -> None:
    now = job_claims["iat"]
    token = mint(job_claims)
    assert verify(token, JOB_TOKEN, resolver, audience="node1", now=now, leeway=0)
    with pytest.raises(TokenExpired):
        verify(token, JOB_TOKEN, resolver, audience="node1", now=job_claims["exp"], leeway=0)
    with pytest.raises(TokenNotYetValid):
        verify(token, JOB_TOKEN, resolver, audience="node1", now=job_claims["nbf"] - 1, leeway=0)


def test_a_nested_payload_past_the_depth_limit_is_refused_by_the_inline_decoder() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(MAX_JSON_DEPTH):
        deep = {"n": deep}
    with pytest.raises(TokenMalformed, match="deeper"):
        decode_segment(_b64(json.dumps(deep).encode()), "payload")
    shallow: dict[str, Any] = {"a": 1}
    for _ in range(MAX_JSON_DEPTH - 1):
        shallow = {"n": shallow}
    assert decode_segment(_b64(json.dumps(shallow).encode()), "payload") == (shallow, False)


@pytest.mark.parametrize(
    "segment",
    ["ABCD\n", " ABCD", "AB CD", "AB\tC", "ABC\x00", "AB+C", "AB/C", "ABC.", "ABCDEF\r\n", "ABCDE", "AR", "AQF",
     "é", "AB=C", "A\u00adBC"],
)  # fmt: skip
def test_strict_base64url_refuses_what_a_lenient_decoder_would_skip(segment: str) -> None:
    with pytest.raises(TokenMalformed):
        b64url_decode(segment, "segment")


class _LifetimeResolver(StaticResolver):
    """realm_a's trust with the given ``max_lifetimes``."""

    def __init__(self, realm: Realm, max_lifetimes: dict[str, int]) -> None:
        super().__init__(realm)
        self.max_lifetimes = max_lifetimes

    def issuer_trust(self, issuer: str) -> IssuerTrust | None:
        trust = super().issuer_trust(issuer)
        return None if trust is None else replace(trust, max_lifetimes=self.max_lifetimes)


@pytest.mark.parametrize(
    ("max_lifetimes", "iat_offset", "lifetime", "refused"),
    [
        ({"job+jwt": 600}, 0, 630, False),  # the maximum plus the leeway
        ({"job+jwt": 600}, 0, 631, True),  # issued for longer than that
        ({"job+jwt": 600}, 25, 620, True),  # issued in the future (within leeway): valid too long from now
        ({"job+jwt": 600}, -100, 700, True),
        ({}, 0, JOB_TOKEN_CEILING, False),  # no configured maximum: the ceiling, never unbounded
        ({}, 0, JOB_TOKEN_CEILING + 31, True),
        ({"at+jwt": 10**9}, 0, JOB_TOKEN_CEILING + 31, True),  # another profile's maximum does not apply
    ],
)
def test_the_inline_lifetime_check_refuses_what_the_full_rule_does(
    mint: Mint,
    job_claims: dict[str, Any],
    realm_a: Realm,
    max_lifetimes: dict[str, int],
    iat_offset: int,
    lifetime: int,
    refused: bool,
) -> None:
    now = job_claims["iat"]
    iat = now + iat_offset
    token = mint(dict(job_claims, iat=iat, nbf=min(iat, now), exp=iat + lifetime))
    resolver = _LifetimeResolver(realm_a, max_lifetimes)
    if not refused:
        assert verify(token, JOB_TOKEN, resolver, audience="node1", now=now, leeway=30)
        return
    with pytest.raises(TokenLifetimeExceeded):
        verify(token, JOB_TOKEN, resolver, audience="node1", now=now, leeway=30)
