"""The algorithm registry: every algorithm round-trips, and each refuses keys that do not fit it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm

from realms.tokens.algorithms import (
    ALGORITHMS,
    EcdsaAlgorithm,
    KeyRefused,
    algorithm_named,
    algorithms_for,
    family_of,
    signature_is_valid,
)
from realms.tokens.keys import jwk_thumbprint, public_jwk, verification_key_from_jwk
from realms.tokens.profiles import SIGNING_ALGORITHMS

MESSAGE = b"header.payload"
WEAK_RSA = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - weak on purpose
OTHER_CURVES = [ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP256K1())]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    generated: dict[str, Any] = {"ES256": ALGORITHMS["ES256"].generate(), "EdDSA": ALGORITHMS["EdDSA"].generate()}
    generated["RS256"] = generated["PS256"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return generated


def test_the_registry_is_the_signing_algorithms_and_asymmetric_only() -> None:
    assert tuple(ALGORITHMS) == SIGNING_ALGORITHMS
    assert not {"none", "HS256", "HS384", "HS512"} & set(ALGORITHMS)
    with pytest.raises(KeyRefused):
        algorithm_named("HS256")


@pytest.mark.parametrize("name", SIGNING_ALGORITHMS)
def test_each_algorithm_signs_verifies_and_round_trips_its_jwk(name: str, keys: dict[str, Any]) -> None:
    algorithm, private = ALGORITHMS[name], keys[name]
    signature = algorithm.sign_pinned(MESSAGE, private)
    assert algorithm.verify(MESSAGE, private.public_key(), signature)
    assert not algorithm.verify(MESSAGE + b"x", private.public_key(), signature)
    jwk = public_jwk(private.public_key(), name)
    assert jwk["kid"] == jwk_thumbprint(private.public_key()) and jwk["alg"] == name and jwk["use"] == "sig"
    key = verification_key_from_jwk(jwk, frozenset({name}))
    assert key is not None and key.algorithm == name
    assert signature_is_valid(name, key.public_key, MESSAGE, signature)


def test_generated_keys_fit_their_algorithm() -> None:
    assert algorithms_for(ALGORITHMS["ES256"].generate()) == ("ES256",)
    assert algorithms_for(ALGORITHMS["EdDSA"].generate().public_key()) == ("EdDSA",)
    generated_rsa = ALGORITHMS["PS256"].generate()
    assert isinstance(generated_rsa, rsa.RSAPrivateKey) and generated_rsa.key_size == 3072
    assert algorithms_for(generated_rsa) == ("RS256", "PS256")


def test_rfc7638_thumbprint_example() -> None:
    # RFC 7638 §3.1: the example RSA key and its thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
        "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw"
    )
    key = ALGORITHMS["RS256"].public_key_from_jwk({"kty": "RSA", "n": n, "e": "AQAB"})
    assert jwk_thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("other", OTHER_CURVES, ids=["P-384", "secp256k1"])
def test_es256_is_p256_only(other: ec.EllipticCurvePrivateKey) -> None:
    es256 = ALGORITHMS["ES256"]
    assert not es256.fits(other) and algorithms_for(other) == ()
    with pytest.raises(KeyRefused):
        es256.sign_pinned(MESSAGE, other)
    # A valid signature by the other curve's key, in its raw r||s form (64 bytes for secp256k1).
    raw = ECAlgorithm(ECAlgorithm.SHA256).sign(MESSAGE, other)
    assert ECAlgorithm(ECAlgorithm.SHA256).verify(MESSAGE, other.public_key(), raw)
    assert not es256.verify(MESSAGE, other.public_key(), raw)
    with pytest.raises(KeyRefused):
        es256.public_key_from_jwk({**public_jwk(other.public_key(), "ES256"), "crv": "P-256"})


def test_es256_takes_only_the_fixed_size_r_s_form(keys: dict[str, Any]) -> None:
    es256, private = ALGORITHMS["ES256"], keys["ES256"]
    raw = es256.sign_pinned(MESSAGE, private)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    for malformed in (der, raw[:-1], raw + b"\0", b"\0" + raw[:-1], b"", b"\0" * 64):
        assert not es256.verify(MESSAGE, private.public_key(), malformed)


def test_eddsa_is_ed25519_only() -> None:
    other = ed448.Ed448PrivateKey.generate()
    eddsa = ALGORITHMS["EdDSA"]
    assert not eddsa.fits(other)
    with pytest.raises(KeyRefused):
        eddsa.sign_pinned(MESSAGE, other)  # type: ignore[arg-type]
    assert not eddsa.verify(MESSAGE, other.public_key(), other.sign(MESSAGE))
    jwk = {"kty": "OKP", "crv": "Ed448", "x": _b64(other.public_key().public_bytes_raw())}
    with pytest.raises(KeyRefused):
        eddsa.public_key_from_jwk(jwk)


@pytest.mark.parametrize("name", ["RS256", "PS256"])
def test_rsa_under_2048_bits_is_never_used(name: str) -> None:
    algorithm = ALGORITHMS[name]
    assert not algorithm.fits(WEAK_RSA)
    with pytest.raises(KeyRefused):
        algorithm.sign_pinned(MESSAGE, WEAK_RSA)
    # Signed outside the registry, with the right padding: still refused at verification.
    signature = ALGORITHMS[name].sign(MESSAGE, WEAK_RSA)
    assert not algorithm.verify(MESSAGE, WEAK_RSA.public_key(), signature)
    with pytest.raises(KeyRefused, match="too weak"):
        algorithm.public_key_from_jwk(public_jwk(WEAK_RSA.public_key(), name))


def test_keys_of_another_family_never_verify(keys: dict[str, Any]) -> None:
    for name, algorithm in ALGORITHMS.items():
        for other_name, other in keys.items():
            if algorithm.holds(other):
                continue
            signature = ALGORITHMS[other_name].sign_pinned(MESSAGE, other)
            assert not algorithm.verify(MESSAGE, other.public_key(), signature), (name, other_name)
            with pytest.raises(KeyRefused):
                algorithm.sign_pinned(MESSAGE, other)


def test_ec_coordinates_must_be_full_size() -> None:
    # RFC 7518 §6.2.1.2: x and y are the full coordinate size, so one key has one spelling.
    while True:
        private = ec.generate_private_key(ec.SECP256R1())
        numbers = private.public_key().public_numbers()
        if numbers.x < 1 << 248:
            break
    jwk = public_jwk(private.public_key(), "ES256")
    assert verification_key_from_jwk(jwk, frozenset({"ES256"})) is not None
    short = {**jwk, "x": _b64(numbers.x.to_bytes((numbers.x.bit_length() + 7) // 8, "big"))}
    assert verification_key_from_jwk(short, frozenset({"ES256"})) is None


def test_kty_and_crv_must_match_the_algorithm(keys: dict[str, Any]) -> None:
    ec_jwk = public_jwk(keys["ES256"].public_key(), "ES256")
    for name in ("EdDSA", "RS256", "PS256"):
        with pytest.raises(KeyRefused, match="kty/crv"):
            ALGORITHMS[name].public_key_from_jwk(ec_jwk)
    with pytest.raises(KeyRefused):
        public_jwk(keys["ES256"].public_key(), "RS256")


def test_family_of_unknown_key_types_is_refused() -> None:
    with pytest.raises(KeyRefused):
        family_of(ed448.Ed448PrivateKey.generate().public_key())
    with pytest.raises(KeyRefused):
        family_of(b"not a key")


def test_another_curve_is_one_registry_line() -> None:
    """An ES384 entry needs no code outside its registry line: the family class does the rest."""
    es384 = EcdsaAlgorithm("ES384", ec.SECP384R1(), "P-384", hashes.SHA384())
    private = es384.generate()
    signature = es384.sign_pinned(MESSAGE, private)
    assert len(signature) == 96 and es384.verify(MESSAGE, private.public_key(), signature)
    key = es384.public_key_from_jwk(es384.public_members(private.public_key()))
    assert es384.verify(MESSAGE, key, signature)
    assert not es384.fits(ec.generate_private_key(ec.SECP256R1()))
