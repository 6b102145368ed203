"""ROCA fingerprint (realms/tokens/roca.py): the Wycheproof ROCA key is caught, other keys are not."""

from __future__ import annotations

import base64
import json
import random
from math import prod
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from realms.tokens.known_keys import KNOWN_KEYS
from realms.tokens.roca import GENERATOR, PRIMES, SUBGROUP_MASKS, has_roca_fingerprint, is_roca_weak

VECTORS = Path(__file__).parent / "vectors" / "wycheproof"
# The first entries of the mask table published with roca-detect (crocs-muni/roca, detect.py):
# the masks computed from the generator must agree with them.
PUBLISHED_PRINTS = (
    6, 30, 126, 1026, 5658, 107286, 199410, 8388606, 536870910, 2147483646, 67109890, 2199023255550,
    8796093022206, 140737488355326, 5310023542746834, 576460752303423486, 1455791217086302986,
    147573952589676412926, 20052041432995567486, 6041388139249378920330, 207530445072488465666,
    9671406556917033397649406, 618970019642690137449562110,
)  # fmt: skip


def _b64_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def wycheproof_roca_key() -> rsa.RSAPublicKey:
    document = json.loads((VECTORS / "roca_key.json").read_text())
    (jwk,) = document["public"]["keys"]
    assert document["tests"][0]["result"] == "invalid"
    return rsa.RSAPublicNumbers(_b64_int(jwk["e"]), _b64_int(jwk["n"])).public_key()


def test_masks_are_the_published_ones() -> None:
    assert SUBGROUP_MASKS[: len(PUBLISHED_PRINTS)] == PUBLISHED_PRINTS
    assert PRIMES[-1] == 167 and len(PRIMES) == 38


def test_the_wycheproof_roca_key_is_caught() -> None:
    key = wycheproof_roca_key()
    assert is_roca_weak(key)
    assert is_roca_weak(key.public_numbers().n)
    # Changing the modulus at all moves it out of some subgroup.
    assert not has_roca_fingerprint(key.public_numbers().n + 2)


def test_moduli_built_the_rsalib_way_are_caught() -> None:
    """p = k * M + (65537^a mod M) (the structure of ROCA §2); primality does not matter here."""
    rng = random.Random(7)
    m = prod(PRIMES) * 2
    for _ in range(50):
        p = rng.getrandbits(800) * m + pow(GENERATOR, rng.getrandbits(40), m)
        q = rng.getrandbits(800) * m + pow(GENERATOR, rng.getrandbits(40), m)
        assert has_roca_fingerprint(p * q)


@pytest.mark.parametrize("bits", [2048, 3072])
def test_freshly_generated_keys_are_not_flagged(bits: int) -> None:
    for _ in range(2):
        assert not is_roca_weak(rsa.generate_private_key(65537, bits))


def test_published_example_keys_and_random_moduli_are_not_flagged() -> None:
    rsa_keys = [k for k in KNOWN_KEYS if k.jwk["kty"] == "RSA"]
    assert len(rsa_keys) >= 10
    for known in rsa_keys:
        assert not has_roca_fingerprint(_b64_int(known.jwk["n"])), known.citation
    rng = random.Random(11)
    assert not any(has_roca_fingerprint(rng.getrandbits(2048) | 1) for _ in range(2000))


def test_other_key_types_and_tiny_values() -> None:
    assert not is_roca_weak(ec.generate_private_key(ec.SECP256R1()).public_key())
    assert not is_roca_weak(ed25519.Ed25519PrivateKey.generate())
    assert not is_roca_weak("not a key")
    assert not has_roca_fingerprint(1) and not has_roca_fingerprint(0)
