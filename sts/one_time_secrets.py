"""One-time bearer secrets the STS hands out and keeps only as a hash: join tokens
(``sts.nodes.enrollment``), authorization codes (RFC 6749 §4.1.2, ``sts.oauth.authorization_codes``)
and refresh tokens (RFC 6749 §6, ``sts.oauth.refresh_tokens``).

Each is 256 random bits (``new_secret``), stored as ``secret_hash`` (the row's primary key, so
it is found by an index lookup), and checked again with ``matches`` before it is used.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_BYTES = 32  # 256 bits (RFC 6749 §10.10: guessing a code or token must be infeasible)


def new_secret(prefix: str = "") -> str:
    """A new secret: ``prefix`` (a recognisable name for a leaked one) and 256 random bits, base64url."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: str) -> str:
    """The stored form of ``secret``: SHA-256 of its UTF-8 bytes, 64 lower-case hex digits."""
    # Why plain SHA-256 and not a keyed hash (HMAC under the master key): the secret is 256
    # random bits, so what a database reader sees cannot be inverted or guessed, with or
    # without a key; a key would not stop a database writer either (who can insert a node's
    # key or a session directly), and it would tie every outstanding secret to the master key,
    # so a master key rotation would have to void them or rehash what it cannot (only the
    # hash is kept). Unlike a password, there is nothing to salt or stretch.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def matches(secret: str, stored_hash: str) -> bool:
    """Whether ``secret`` is the one stored as ``stored_hash``, in constant time."""
    # Why again after the lookup by hash: the database's comparison is not ours to rely on (a
    # collation may ignore case or trailing spaces); compare_digest takes the same time wherever
    # the first differing byte is. The lookup itself leaks nothing: an index probe on the hash
    # of a secret tells a timing attacker about hashes they cannot choose.
    return hmac.compare_digest(secret_hash(secret), stored_hash)
