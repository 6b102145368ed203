"""Signature checks for the pinned algorithms (RFC 7518 §3.3, §3.4, §3.5; RFC 8037 §3.1).

Called directly on ``cryptography`` with the padding and hash objects built once: the
verifier runs on every job at every agent, and this is its hot path.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from realms.tokens.keys import PublicKey

_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
_PKCS1 = padding.PKCS1v15()
# RFC 7518 §3.5: the PSS salt is as long as the hash output.
_PSS = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=32)
ES256_SIGNATURE_BYTES = 64


def signature_is_valid(algorithm: str, key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``algorithm``'s signature of ``signing_input`` under ``key``.

    The key's type must match the algorithm; any mismatch or malformed signature is ``False``.
    """
    try:
        if algorithm == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            # Why: JWS carries raw r||s (RFC 7518 §3.4); a DER or odd-length value is not a signature.
            if len(signature) != ES256_SIGNATURE_BYTES or not isinstance(key.curve, ec.SECP256R1):
                return False
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), signing_input, _ECDSA_SHA256)
        elif algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signing_input)
        elif algorithm == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, _PKCS1, _SHA256)
        elif algorithm == "PS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signing_input, _PSS, _SHA256)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True
