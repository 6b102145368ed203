"""The master key: AES-256-GCM encryption of secrets at rest (signing keys, stored job tokens).

During a master-key rotation the STS also holds fallback keys: blobs are always written under
the current key and read under whichever key seals them (``sts.keys.master_rotation``).

The key is 32 random bytes, written base64url in a file of mode 0600 (``jobsts init``) or
given as ``JOBSTS_MASTER_KEY``. Blobs are ``version (1 byte) || nonce (12) || ciphertext+tag``;
the caller's ``aad`` binds each blob to where it is stored, so a blob copied to another row
does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from realms.errors import ConfigError
from sts.config import StsConfig

BLOB_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32


class MasterKeyError(ConfigError):
    code: ClassVar[str] = "master_key.invalid"


class MasterKeyInsecure(MasterKeyError):
    code: ClassVar[str] = "master_key.insecure"


class MasterKeyMismatch(MasterKeyError):
    code: ClassVar[str] = "master_key.mismatch"


def _decode_key(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{source}: master key is not base64url", field="master_key") from None
    if len(raw) != KEY_BYTES:
        raise MasterKeyError(f"{source}: master key must be {KEY_BYTES} bytes, not {len(raw)}", field="master_key")
    return raw


def encode_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class MasterKey:
    """AES-GCM with a random 96-bit nonce per blob (NIST SP 800-38D §8.2.2)."""

    def __init__(self, key: bytes, fallbacks: tuple[MasterKey, ...] = ()) -> None:
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"master key must be {KEY_BYTES} bytes")
        self._key, self._aead = key, AESGCM(key)
        self.fallbacks = fallbacks
        # Why: a MAC key derived for one purpose (RFC 2104 HMAC as a PRF, label-separated)
        # never equals the encryption key nor another purpose's MAC key.
        self._mac_root = hmac.new(key, b"jobsts/mac-root", hashlib.sha256).digest()

    def mac(self, label: str, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under a key derived from the master key for ``label``."""
        key = hmac.new(self._mac_root, label.encode(), hashlib.sha256).digest()
        return hmac.new(key, message, hashlib.sha256).digest()

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_file(cls, path: Path) -> MasterKey:
        """Load the key file; refuse it when group or others may read or write it."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise MasterKeyError(
                f"{path}: cannot open master key file: {exc.strerror}", field="master_key_file"
            ) from None
        with os.fdopen(fd, "r", encoding="ascii") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            # Why: anyone who can read the master key can decrypt every signing key and mint
            # tokens for every realm; a loose mode is a configuration error, not a warning.
            if mode & 0o077:
                raise MasterKeyInsecure(
                    f"{path}: master key file has mode {mode:04o}; it must be readable by its owner only (0600)",
                    field="master_key_file",
                )
            try:
                text = handle.read(256)
            except UnicodeDecodeError:
                raise MasterKeyError(f"{path}: master key is not base64url", field="master_key_file") from None
        return cls(_decode_key(text, str(path)))

    @classmethod
    def load(cls, config: StsConfig) -> MasterKey:
        """``JOBSTS_MASTER_KEY`` if set, else the configured key file; with its fallback key files."""
        fallbacks = tuple(cls.from_file(path) for path in config.fallback_master_key_files)
        if config.master_key_env:
            return cls(_decode_key(config.master_key_env, "JOBSTS_MASTER_KEY"), fallbacks)
        if config.master_key_file is None:
            raise MasterKeyError("no master key: set sts.master_key_file or JOBSTS_MASTER_KEY", field="master_key_file")
        return cls(cls.from_file(config.master_key_file)._key, fallbacks)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return bytes([BLOB_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext, under the current key or, during a rotation, a fallback key."""
        for key in (self, *self.fallbacks):
            plaintext = key._open(blob, aad)
            if plaintext is not None:
                return plaintext
        raise MasterKeyMismatch("a stored secret does not decrypt: wrong master key, or the row was altered or moved")

    def is_current(self, blob: bytes, aad: bytes) -> bool:
        """Whether ``blob`` is sealed under the current key."""
        return self._open(blob, aad) is not None

    def reseal(self, blob: bytes, aad: bytes) -> bytes | None:
        """``blob`` sealed again under the current key, or ``None`` when it already is."""
        if self.is_current(blob, aad):
            return None
        return self.encrypt(self.decrypt(blob, aad), aad)

    def _open(self, blob: bytes, aad: bytes) -> bytes | None:
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] != BLOB_VERSION:
            raise MasterKeyMismatch("stored secret has an unknown format or version")
        nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, aad)
        except InvalidTag:
            return None


def create_key_file(path: Path) -> None:
    """Write a new random master key to ``path`` with mode 0600; never overwrite an existing file."""
    try:
        # Why: O_EXCL refuses to follow or reuse an existing file, and the mode is set at
        # creation, so the key is never readable by others, not even for an instant.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise MasterKeyError(
            f"{path}: already exists; refusing to overwrite a master key", field="master_key_file"
        ) from None
    except OSError as exc:
        raise MasterKeyError(
            f"{path}: cannot create master key file: {exc.strerror}", field="master_key_file"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(encode_key(secrets.token_bytes(KEY_BYTES)) + "\n")
