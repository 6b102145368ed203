"""The one registry of JWS signing algorithms (RFC 7518 §3.3-§3.5, RFC 8037 §3.1), built on PyJWT.

PyJWT's ``jwt.algorithms`` classes already sign, verify and move keys to and from JWK
(RFC 7517, RFC 7518 §6). Each family below extends one of them with what it lacks: key
generation, the RFC 7638 thumbprint, the pinning rule (which key type, curve and size an
algorithm accepts) and a verify that builds its hash and padding objects once, because the
agent verifies a signature on every job.

Adding an algorithm is one registry line (a family class that exists) or one class and one line.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm
from jwt.exceptions import InvalidKeyError

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
# Why: RSA under 2048 bits is breakable with public means (NIST SP 800-131A); such keys are
# never imported, signed with or verified with.
MIN_RSA_BITS = 2048
GENERATED_RSA_BITS = 3072


# The concrete class of cryptography's EC public keys (an ``ec.EllipticCurvePublicKey``).
_EC_PUBLIC_KEY = type(ec.derive_private_key(1, ec.SECP256R1()).public_key())


class KeyRefused(ValueError):
    """A key (or a JWK) that the algorithm it is offered for does not accept, and why."""


class SigningAlgorithm(Algorithm):
    """What the registry adds to a PyJWT algorithm; the family classes below implement it."""

    name: str
    kty: ClassVar[str]
    crv: str | None = None
    # The public and private key classes of this family (``cryptography``).
    key_types: ClassVar[tuple[type, ...]]
    # RFC 7638 §3.2: the members a thumbprint is computed over, for this key type.
    thumbprint_members: ClassVar[tuple[str, ...]]

    def generate(self) -> PrivateKey:
        """A fresh private key that this algorithm accepts."""
        raise NotImplementedError

    def holds(self, key: object) -> bool:
        """True if ``key`` (public or private) is of this family's key type, whatever its size."""
        return isinstance(key, self.key_types)

    def refusal(self, key: object) -> str | None:
        """Why ``key`` may not be used with this algorithm (type, curve, size), or ``None`` if it may."""
        raise NotImplementedError

    def fits(self, key: object) -> bool:
        """The pinning rule: ``key`` is of the type, curve and size this algorithm accepts."""
        return self.refusal(key) is None

    def public_members(self, key: PublicKey) -> dict[str, str]:
        """The required public members (RFC 7638 §3.2) in sorted order, via PyJWT's ``to_jwk``."""
        if not self.holds(key):
            raise KeyRefused(f"{type(key).__name__} is not a {self.kty} key")
        jwk = self.to_jwk(key, as_dict=True)
        return {member: str(jwk[member]) for member in sorted(self.thumbprint_members)}

    def thumbprint(self, key: PublicKey) -> str:
        """RFC 7638 §3: SHA-256 over the required members, sorted, no whitespace; base64url."""
        canonical = json.dumps(self.public_members(key), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode("utf-8")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def public_key_from_jwk(self, jwk: Mapping[str, Any]) -> PublicKey:
        """The public key of ``jwk`` (PyJWT's ``from_jwk``), pinned to this algorithm; else ``KeyRefused``.

        The caller has refused private members already; this checks ``kty``/``crv`` against the
        algorithm before parsing, and the key's type, curve and size after.
        """
        if not self._shape_matches(jwk):
            raise KeyRefused(f"kty/crv do not match {self.name}")
        try:
            key: object = self.from_jwk(dict(jwk))
        except (KeyError, ValueError, TypeError, InvalidKeyError) as exc:
            raise KeyRefused(type(exc).__name__) from None
        refusal = self.refusal(key)
        if refusal is not None or not isinstance(key, PublicKey):
            raise KeyRefused(refusal or "not a public key")
        return key

    def _shape_matches(self, jwk: Mapping[str, Any]) -> bool:
        return jwk.get("kty") == self.kty and (self.crv is None or jwk.get("crv") == self.crv)

    def sign_pinned(self, signing_input: bytes, key: PrivateKey) -> bytes:
        """The signature of ``signing_input`` by ``key``; ``KeyRefused`` if the key does not fit."""
        refusal = self.refusal(key)
        if refusal is not None or not isinstance(key, PrivateKey):
            raise KeyRefused(f"key does not sign {self.name}: {refusal or 'not a private key'}")
        return self.sign(signing_input, key)


class EcdsaAlgorithm(SigningAlgorithm, ECAlgorithm):
    """ECDSA over one curve and hash (RFC 7518 §3.4): JWS carries the fixed-size r||s pair."""

    kty = "EC"
    key_types = (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)
    thumbprint_members = ("crv", "kty", "x", "y")

    def __init__(self, name: str, curve: ec.EllipticCurve, crv: str, hash_algorithm: hashes.HashAlgorithm) -> None:
        super().__init__(type(hash_algorithm), type(curve))
        self.name, self.curve, self.crv = name, curve, crv
        self._curve_type = type(curve)
        self._half = half = (curve.key_size + 7) // 8
        self._ecdsa = ec.ECDSA(hash_algorithm)
        # The DER heads of r||s (``_der``), by whether r and s need a 0x00 sign byte; only
        # when the SEQUENCE length fits one byte (P-256 and P-384; P-521 takes the slow path).
        self._der_heads: tuple[tuple[bytes, bytes], ...] | None = None
        if 2 * (2 + 1 + half) < 0x80:
            self._der_heads = tuple(
                (
                    bytes((0x30, 4 + 2 * half + r_pad + s_pad, 0x02, half + r_pad)) + b"\x00" * r_pad,
                    bytes((0x02, half + s_pad)) + b"\x00" * s_pad,
                )
                for r_pad in (0, 1)
                for s_pad in (0, 1)
            )

    def _der(self, sig: bytes) -> bytes:
        """``encode_dss_signature`` of the raw r||s pair (RFC 7518 §3.4), without building ints
        when r and s have no leading zero byte (their DER INTEGER is then the bytes themselves,
        after a 0x00 when the high bit is set); anything else takes ``encode_dss_signature``."""
        half, heads = self._half, self._der_heads
        r, s = sig[:half], sig[half:]
        if heads is not None and r[0] and s[0]:
            head, middle = heads[(r[0] >> 7) << 1 | s[0] >> 7]
            return head + r + middle + s
        return encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))

    def generate(self) -> PrivateKey:
        return ec.generate_private_key(self.curve)

    def refusal(self, key: object) -> str | None:
        if not isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
            return f"{type(key).__name__} is not an EC key"
        # Why: ES256 means P-256 and nothing else (RFC 7518 §3.4); a key on another curve must
        # not verify a token that names ES256.
        if not isinstance(key.curve, self._curve_type):
            return f"curve {key.curve.name} is not {self.crv}"
        return None

    def verify(self, msg: bytes, key: object, sig: bytes) -> bool:
        """Direct on ``cryptography`` with the ECDSA object built once (the agent's hot path)."""
        # Why: JWS carries raw r||s (RFC 7518 §3.4); a DER or odd-length value is not a signature.
        if (
            len(sig) != 2 * self._half
            # ``type(key) is``: the common case without the ABC's instance check.
            or (type(key) is not _EC_PUBLIC_KEY and not isinstance(key, ec.EllipticCurvePublicKey))
            or not isinstance(key.curve, self._curve_type)
        ):
            return False
        try:
            key.verify(self._der(sig), msg, self._ecdsa)
        except (InvalidSignature, ValueError):
            return False
        return True


class EddsaAlgorithm(SigningAlgorithm, OKPAlgorithm):
    """EdDSA (RFC 8037 §3.1), pinned to Ed25519: Ed448 keys are refused."""

    kty = "OKP"
    key_types = (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)
    thumbprint_members = ("crv", "kty", "x")
    crv = "Ed25519"

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def generate(self) -> PrivateKey:
        return ed25519.Ed25519PrivateKey.generate()

    def refusal(self, key: object) -> str | None:
        return None if self.holds(key) else f"{type(key).__name__} is not an Ed25519 key"

    def verify(self, msg: str | bytes, key: object, sig: str | bytes) -> bool:
        if not isinstance(key, ed25519.Ed25519PublicKey) or not isinstance(msg, bytes) or not isinstance(sig, bytes):
            return False
        try:
            key.verify(sig, msg)
        except (InvalidSignature, ValueError):
            return False
        return True


class _RsaFamily(SigningAlgorithm):
    """The RSA key rules shared by RSASSA-PKCS1-v1_5 and RSASSA-PSS."""

    kty = "RSA"
    key_types = (rsa.RSAPublicKey, rsa.RSAPrivateKey)
    thumbprint_members = ("e", "kty", "n")
    _padding: padding.AsymmetricPadding
    _hash: hashes.HashAlgorithm

    def generate(self) -> PrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=GENERATED_RSA_BITS)

    def refusal(self, key: object) -> str | None:
        if not isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
            return f"{type(key).__name__} is not an RSA key"
        if key.key_size < MIN_RSA_BITS:
            return f"RSA key of {key.key_size} bits is too weak"
        return None

    def verify(self, msg: bytes, key: object, sig: bytes) -> bool:
        """Direct on ``cryptography`` with the padding and hash objects built once."""
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
            return False
        try:
            key.verify(sig, msg, self._padding, self._hash)
        except (InvalidSignature, ValueError):
            return False
        return True


class RsaPkcs1Algorithm(_RsaFamily, RSAAlgorithm):
    """RSASSA-PKCS1-v1_5 (RFC 7518 §3.3)."""

    def __init__(self, name: str, hash_algorithm: hashes.HashAlgorithm) -> None:
        super().__init__(type(hash_algorithm))
        self.name, self._hash, self._padding = name, hash_algorithm, padding.PKCS1v15()


class RsaPssAlgorithm(_RsaFamily, RSAPSSAlgorithm):
    """RSASSA-PSS with MGF1 (RFC 7518 §3.5): the salt is as long as the hash output."""

    def __init__(self, name: str, hash_algorithm: hashes.HashAlgorithm) -> None:
        super().__init__(type(hash_algorithm))
        self.name, self._hash = name, hash_algorithm
        self._padding = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)


# Why asymmetric only: an HMAC algorithm would let anyone holding the public key mint tokens
# (the RS256 -> HS256 confusion), and "none" is no signature at all. A plain dict typed as a
# read-only Mapping: the verifier looks an algorithm up on every token (a proxy costs 3x).
ALGORITHMS: Mapping[str, SigningAlgorithm] = {
    algorithm.name: algorithm
    for algorithm in (
        EcdsaAlgorithm("ES256", ec.SECP256R1(), "P-256", hashes.SHA256()),
        EddsaAlgorithm("EdDSA"),
        RsaPkcs1Algorithm("RS256", hashes.SHA256()),
        RsaPssAlgorithm("PS256", hashes.SHA256()),
    )
}
DEFAULT_ALGORITHM = "ES256"


def algorithm_named(name: str) -> SigningAlgorithm:
    """The registered algorithm ``name``; ``KeyRefused`` for any other name."""
    found = ALGORITHMS.get(name)
    if found is None:
        raise KeyRefused(f"unsupported algorithm {name!r}")
    return found


def family_of(key: object) -> SigningAlgorithm:
    """The first registered algorithm whose key type ``key`` is (for thumbprints and loading)."""
    for algorithm in ALGORITHMS.values():
        if algorithm.holds(key):
            return algorithm
    raise KeyRefused(f"{type(key).__name__} is not a key of any registered algorithm")


def algorithms_for(key: object) -> tuple[str, ...]:
    """The registered algorithms that ``key`` fits (its type, curve and size)."""
    return tuple(name for name, algorithm in ALGORITHMS.items() if algorithm.fits(key))


def signature_is_valid(algorithm: str, key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``algorithm``'s signature of ``signing_input`` under ``key``.

    An unknown algorithm, a key that does not fit it, or a malformed signature is ``False``.
    """
    found = ALGORITHMS.get(algorithm)
    return found is not None and found.verify(signing_input, key, signature)
