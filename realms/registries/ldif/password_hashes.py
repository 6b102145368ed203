"""Verify and create ``userPassword`` values in the schemes slapd writes (RFC 3112 style ``{SCHEME}``).

Verified: ``{SSHA}`` (SHA-1), ``{SSHA256}`` and ``{SSHA512}`` (slapd's pw-sha2 module:
base64 of digest || salt), ``{PBKDF2-SHA256}`` (pw-pbkdf2: ``<iterations>$<salt>$<key>`` in
passlib's adapted base64) and ``{ARGON2}`` (slapd's argon2 module: a PHC string). A value
without a scheme is plaintext and only accepted when the realm allows it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os

import argon2

from realms.text import is_ascii_number

log = logging.getLogger(__name__)

_SALTED: dict[str, tuple[str, int]] = {
    "SSHA": ("sha1", 20),
    "SSHA256": ("sha256", 32),
    "SSHA512": ("sha512", 64),
}
SCHEMES: tuple[str, ...] = ("SSHA", "SSHA256", "SSHA512", "PBKDF2-SHA256", "ARGON2")
_MAX_PBKDF2_ITERATIONS = 10_000_000
_argon2 = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def _ab64_decode(text: str) -> bytes:
    """passlib's "adapted base64": standard alphabet with ``.`` for ``+`` and no padding."""
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _ab64_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=").replace("+", ".")


def split_scheme(stored: str) -> tuple[str | None, str]:
    """``"{SSHA}abc"`` -> ``("SSHA", "abc")``; a value without a scheme -> ``(None, value)``."""
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 1:
            return stored[1:end].upper(), stored[end + 1 :]
    return None, stored


def _verify_salted(algorithm: str, size: int, encoded: str, secret: bytes) -> bool:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) <= size:
        return False
    digest, salt = raw[:size], raw[size:]
    # Why: compare_digest takes the same time wherever the first differing byte is.
    return hmac.compare_digest(hashlib.new(algorithm, secret + salt).digest(), digest)


def _verify_pbkdf2(encoded: str, secret: bytes) -> bool:
    parts = encoded.split("$")
    if len(parts) != 3 or not is_ascii_number(parts[0]):
        return False
    iterations = int(parts[0])
    # Why: the iteration count comes from the file; bound it so a bad entry cannot stall logins.
    if not 1 <= iterations <= _MAX_PBKDF2_ITERATIONS:
        return False
    try:
        salt, key = _ab64_decode(parts[1]), _ab64_decode(parts[2])
    except (binascii.Error, ValueError):
        return False
    if not salt or not key:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, dklen=len(key))
    return hmac.compare_digest(candidate, key)


def _verify_argon2(encoded: str, password: str) -> bool:
    try:
        return _argon2.verify(encoded, password)
    except argon2.exceptions.VerificationError:
        return False
    except argon2.exceptions.InvalidHashError:
        return False


def verify_password(stored: str, password: str, *, allow_plaintext: bool = False) -> bool:
    """True when ``password`` matches the ``userPassword`` value ``stored``.

    Unknown schemes never match. Plaintext values match only with ``allow_plaintext``.
    """
    scheme, encoded = split_scheme(stored)
    secret = password.encode("utf-8")
    if scheme in _SALTED:
        algorithm, size = _SALTED[scheme]
        return _verify_salted(algorithm, size, encoded, secret)
    if scheme == "PBKDF2-SHA256":
        return _verify_pbkdf2(encoded, secret)
    if scheme == "ARGON2":
        return _verify_argon2(encoded, password)
    if scheme is None:
        if not allow_plaintext:
            # Why: a cleartext userPassword is readable by anyone who can read the file.
            log.warning("plaintext userPassword refused (set allow_plaintext = true to accept it)")
            return False
        return hmac.compare_digest(stored.encode("utf-8"), secret)
    log.warning("userPassword scheme {%s} is not supported", scheme)
    return False


def hash_password(password: str, scheme: str = "SSHA256", *, salt: bytes | None = None) -> str:
    """Create a ``userPassword`` value in ``scheme`` (for seeds, examples and tests)."""
    secret = password.encode("utf-8")
    scheme = scheme.upper()
    if scheme in _SALTED:
        algorithm, _ = _SALTED[scheme]
        salt = salt if salt is not None else os.urandom(8)
        digest = hashlib.new(algorithm, secret + salt).digest()
        return "{%s}%s" % (scheme, base64.b64encode(digest + salt).decode("ascii"))  # noqa: UP031
    if scheme == "PBKDF2-SHA256":
        salt = salt if salt is not None else os.urandom(16)
        iterations = 10000
        key = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations)
        return f"{{PBKDF2-SHA256}}{iterations}${_ab64_encode(salt)}${_ab64_encode(key)}"
    if scheme == "ARGON2":
        return "{ARGON2}" + _argon2.hash(password, salt=salt)
    raise ValueError(f"unsupported scheme {scheme!r}; one of {', '.join(SCHEMES)}")
