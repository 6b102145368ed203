"""Publicly known example keys (realms/tokens/known_keys.py): each is caught however it is dressed.

The private halves below are printed in the cited RFCs; deriving the public keys from them here
proves the table was transcribed right (a wrong digit would miss the key it stands for).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from realms.tokens.known_keys import KNOWN_KEYS, is_publicly_known, jwk_thumbprint, known_by_thumbprint

CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64_int(text: str) -> int:
    return int.from_bytes(unb64(text), "big")


def known(fragment: str) -> dict[str, str]:
    (found,) = [k for k in KNOWN_KEYS if fragment in k.citation]
    return dict(found.jwk)


def as_key(jwk: dict[str, str]) -> Any:
    """The ``cryptography`` public key object of a table entry (None for a symmetric key)."""
    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(b64_int(jwk["e"]), b64_int(jwk["n"])).public_key()
    if jwk["kty"] == "EC":
        # Loading checks the point is on the curve: a mistyped coordinate fails here.
        return ec.EllipticCurvePublicNumbers(b64_int(jwk["x"]), b64_int(jwk["y"]), CURVES[jwk["crv"]]).public_key()
    if jwk["kty"] == "OKP":
        if jwk["crv"] == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(unb64(jwk["x"]))
        return x25519.X25519PublicKey.from_public_bytes(unb64(jwk["x"]))
    return None


@pytest.mark.parametrize("entry", KNOWN_KEYS, ids=lambda k: k.citation[:60])
def test_every_entry_is_caught_as_a_jwk_and_as_a_key_object(entry: Any) -> None:
    jwk = dict(entry.jwk)
    assert is_publicly_known(jwk) == entry.citation
    assert is_publicly_known({**jwk, "kid": "innocent-looking", "use": "sig", "alg": "RS256"}) == entry.citation
    assert known_by_thumbprint(jwk_thumbprint(jwk)) == entry.citation
    key = as_key(jwk)
    if key is not None:
        assert is_publicly_known(key) == entry.citation


def test_entries_are_distinct() -> None:
    thumbprints = [jwk_thumbprint(k.jwk) for k in KNOWN_KEYS]
    assert len(set(thumbprints)) == len(thumbprints)
    assert len({k.citation for k in KNOWN_KEYS}) == len(KNOWN_KEYS)


def test_thumbprints_published_in_the_rfcs() -> None:
    # RFC 7638 §3.1 and RFC 8037 Appendix A.3 print these thumbprints.
    assert jwk_thumbprint(known("RFC 7638")) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert jwk_thumbprint(known("RFC 8037 Appendix A.1")) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


EC_PRIVATE = {
    "RFC 7515 Appendix A.3": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
    "RFC 7515 Appendix A.4": "AY5pb7A0UFiB3RELSD64fTLOSV_jazdF7fLYyuTw8lOfRhWg6Y6rUrPAxerEzgdRhajnu0ferB0d53vM9mE15j2C",
    "Alice, ECDH-ES": "0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo",
    "Bob, ECDH-ES": "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw",
    "RFC 7520 §3.1": "AAhRON2r9cqXX1hg-RoI6R1tX5p2rUAYdmpHZoC1XNM56KtscrX6zbKipQrCW9CGZH3T4ubpnoTKLDYJ_fF3_rJt",
    "RFC 7520 §5.4": "iTx2pk7wW-GqJkHcEkFQb2EFyYcO7RugmaW3mRrQVAOUiPommT0IdnYK2xDlZh-j",
}


@pytest.mark.parametrize("fragment", EC_PRIVATE)
def test_ec_entries_are_the_public_halves_of_the_published_private_keys(fragment: str) -> None:
    jwk = known(fragment)
    private = ec.derive_private_key(b64_int(EC_PRIVATE[fragment]), CURVES[jwk["crv"]])
    numbers = private.public_key().public_numbers()
    assert (numbers.x, numbers.y) == (b64_int(jwk["x"]), b64_int(jwk["y"]))
    assert is_publicly_known(private) is not None  # a private key object is looked up by its public half


OKP_SEEDS = {
    "TEST 1 ": ("Ed25519", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
    "TEST 2 ": ("Ed25519", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
    "TEST 3 ": ("Ed25519", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7"),
    "TEST 1024": ("Ed25519", "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5"),
    "test-key-ed25519": ("Ed25519", unb64("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU").hex()),
    "X25519 key of Alice": ("X25519", "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    "X25519 key of Bob": ("X25519", "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
}


@pytest.mark.parametrize("fragment", OKP_SEEDS)
def test_okp_entries_are_the_public_halves_of_the_published_seeds(fragment: str) -> None:
    curve, seed = OKP_SEEDS[fragment]
    loader = ed25519.Ed25519PrivateKey if curve == "Ed25519" else x25519.X25519PrivateKey
    private = loader.from_private_bytes(bytes.fromhex(seed))
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert known(fragment) == {"kty": "OKP", "crv": curve, "x": b64(raw)}


RSA_FACTORS = {
    "RFC 7520 §3.3": (
        "3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TDjDAWU4Vupk8rw9JR0AzZ0N2fvuIAmr_WCsmG"
        "peNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k",
        "uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDyI95HrUeq3MP15vMMON8lHTeZu2lmKvwqW7an"
        "V5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ192zB3pVFJ0s7pFc",
    ),
    "RFC 7520 §5.2": (
        "7_2v3OQZzlPFcHyYfLABQ3XP85Es4hCdwCkbDeltaUXgVy9l9etKghvM4hRkOvbb01kYVuLFmxIkCDtpi-zLCYAdXKrAK3PtSbtzld_XZ9nlsY"
        "a_QZWpXB_IrtFjVfdKUdMz94pHUhFGFj7nr6NNxfpiHSHWFE1zD_AC3mY46J961Y2LRnreVwAGNw53p07Db8yD_92pDa97vqcZOdgtybH9q6uma-"
        "RFNhO1AoiJhYZj69hjmMRXx-x56HO9cnXNbmzNSCFCKnQmn4GQLmRj9sfbZRqL94bbtE4_e0Zrpo8RNo8vxRLqQNwIy85fc6BRgBJomt8QdQvIgP"
        "gWCv5HoQ",
        "zqOHk1P6WN_rHuM7ZF1cXH0x6RuOHq67WuHiSknqQeefGBA9PWs6ZyKQCO-O6mKXtcgE8_Q_hA2kMRcKOcvHil1hqMCNSXlflM7WPRPZu2qCDc"
        "qssd_uMbP-DqYthH_EzwL9KnYoH7JQFxxmcv5An8oXUtTwk4knKjkIYGRuUwfQTus0w1NfjFAyxOOiAQ37ussIcE6C6ZSsM3n41UlbJ7TCqewzVJ"
        "aPJN5cxjySPZPD3Vp01a9YgAD6a3IIaKJdIxJS1ImnfPevSJQBE79-EXe2kSwVgOzvt-gsmM29QQ8veHy4uAqca5dZzMs7hkkHtw1z0jHV90epQJ"
        "JlXXnH8Q",
    ),
}


@pytest.mark.parametrize("fragment", RSA_FACTORS)
def test_rsa_entries_are_the_products_of_the_published_factors(fragment: str) -> None:
    p, q = (b64_int(f) for f in RSA_FACTORS[fragment])
    assert b64_int(known(fragment)["n"]) == p * q


def test_rsa_entries_have_the_published_sizes() -> None:
    sizes = {k.citation: b64_int(k.jwk["n"]).bit_length() for k in KNOWN_KEYS if k.jwk["kty"] == "RSA"}
    assert sizes[next(c for c in sizes if "§5.2" in c)] == 4096
    assert sizes[next(c for c in sizes if "cavage" in c)] == 1024
    assert {size for citation, size in sizes.items() if "§5.2" not in citation and "cavage" not in citation} == {2048}


def test_a_renamed_or_re_exponented_key_is_still_caught() -> None:
    rsa_jwk = known("RFC 7515 Appendix A.2")
    assert is_publicly_known({**rsa_jwk, "e": "Aw"}) is not None  # e = 3: same modulus, same factors
    assert known_by_thumbprint(jwk_thumbprint({**rsa_jwk, "e": "Aw"})) is None  # the thumbprint alone would miss it
    ec_jwk = known("RFC 7515 Appendix A.3")
    public = as_key(ec_jwk).public_numbers()
    negated = ec.EllipticCurvePublicNumbers(public.x, _P256 - public.y, ec.SECP256R1())  # the point -P
    assert is_publicly_known(negated.public_key()) == is_publicly_known(ec_jwk)
    pem = as_key(ec_jwk).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert is_publicly_known(serialization.load_pem_public_key(pem)) is not None


_P256 = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF


def test_fresh_keys_and_garbage_are_not_known() -> None:
    for private in (rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1()),
                    ec.generate_private_key(ec.SECP521R1()), ed25519.Ed25519PrivateKey.generate()):  # fmt: skip
        assert is_publicly_known(private) is None
        assert is_publicly_known(private.public_key()) is None
    for garbage in (None, 7, "key", {}, {"kty": "RSA"}, {"kty": "RSA", "n": 5}, {"kty": "EC", "crv": "P-256",
                    "x": "!!"}, {"kty": "nope"}, b"bytes"):  # fmt: skip
        assert is_publicly_known(garbage) is None
