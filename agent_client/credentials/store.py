"""The encrypted credential store: ``credentials.enc`` sealed with ``credentials.key``.

The key file holds 32 random bytes (base64), created with mode 0600 beside the node key and
checked by the agent's strict file-mode rules like the node key. The store is one
AES-256-GCM message (NIST SP 800-38D) with a fresh 96-bit nonce per write and the format
name as associated data; its plaintext is a JSON object of entries. Each entry keeps the
user name, the secret (a password, or a private key with its passphrase), and the uid of
the OS account that added it: like the Windows Credential Manager behind JS7's user
switching, a key is usable only by the account that stored it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent_client.credentials.errors import (
    CredentialBadInput,
    CredentialForeign,
    CredentialMissing,
    CredentialStoreInvalid,
)
from agent_client.file_modes import path_problems

CREDENTIAL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
FORMAT = "jobsts-credentials-v1"
KINDS = ("password", "ssh_key")
ADD_HINT = "jobsts agent credentials add {key} --config CONFIG --user NAME --password-stdin (or --ssh-key FILE)"


@dataclass(frozen=True, slots=True)
class CredentialsConfig:
    """Where the store and its key file are (``[credentials]``; defaults beside the node key)."""

    store: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What a decision may know about a key: never the secret."""

    key: str
    user: str
    kind: str  # "password" | "ssh_key"
    added_by: int
    added_at: int
    has_password: bool
    has_passphrase: bool

    def describe(self) -> str:
        return f"{self.key}: user {self.user}, {self.kind.replace('_', ' ')}, added by uid {self.added_by}"


@dataclass(frozen=True, slots=True)
class Secret:
    """The secret of one key, opened only to run a job. ``repr`` never shows it."""

    key: str
    user: str
    password: str | None = None
    private_key: str | None = None
    passphrase: str | None = None

    def __repr__(self) -> str:
        # Why: a secret must never reach a log line or a traceback through its repr.
        return f"Secret(key={self.key!r}, user={self.user!r}, <hidden>)"


def check_key_name(key: str) -> str:
    if not isinstance(key, str) or CREDENTIAL_KEY.fullmatch(key) is None:
        raise CredentialMissing(
            f"credential key {str(key)[:40]!r} is not a valid name (expected [A-Za-z0-9][A-Za-z0-9._-]{{0,62}})",
            key=str(key)[:40],
        )
    return key


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a 0600 temporary file, fsync, rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class CredentialStore:
    """Read, add and remove entries of the encrypted store at ``config.store``."""

    def __init__(self, config: CredentialsConfig) -> None:
        self.config = config

    # -- the key ---------------------------------------------------------------------------
    def _key(self, *, create: bool) -> bytes:
        path = self.config.key_file
        if create and not os.path.lexists(path):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Why: O_EXCL + mode 0600 in one step: the key is never readable by others, and
            # an existing file (or a planted symlink) is never overwritten.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
        self._check_modes(path, "credentials.key_file")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            raise CredentialStoreInvalid(
                f"credential store key {path} does not exist; add a credential first", field="credentials.key_file"
            ) from None
        except OSError as exc:
            raise CredentialStoreInvalid(
                f"cannot read credential store key {path}: {exc.strerror}", field="credentials.key_file"
            ) from None
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise CredentialStoreInvalid(f"{path} is not a credential store key", field="credentials.key_file")
        return key

    @staticmethod
    def _check_modes(path: Path, field: str) -> None:
        """The agent's strict file-mode rules, on every open: private file, safe parents, no symlink."""
        if not os.path.lexists(path):
            return
        # Why: whoever can read the key (or swap the files) can read or plant every secret.
        problems = path_problems(path, private=True)
        if problems:
            raise CredentialStoreInvalid(f"refusing to use the credential store: {problems[0]}", field=field)

    # -- the data --------------------------------------------------------------------------
    def _read(self, key: bytes) -> dict[str, dict[str, Any]]:
        path = self.config.store
        self._check_modes(path, "credentials.store")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as handle:
                envelope = json.loads(handle.read())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CredentialStoreInvalid(
                f"cannot read credential store {path}: {exc}", field="credentials.store"
            ) from None
        try:
            if envelope.get("format") != FORMAT:
                raise ValueError("unknown format")
            nonce = base64.b64decode(envelope["nonce"], validate=True)
            sealed = base64.b64decode(envelope["sealed"], validate=True)
            plain = AESGCM(key).decrypt(nonce, sealed, FORMAT.encode("ascii"))
            entries = json.loads(plain)["entries"]
        except (InvalidTag, KeyError, TypeError, ValueError, AttributeError):
            raise CredentialStoreInvalid(
                f"credential store {path} does not decrypt with {self.config.key_file} (wrong key or damaged file)",
                field="credentials.store",
            ) from None
        if not isinstance(entries, dict):
            raise CredentialStoreInvalid(f"credential store {path} is damaged", field="credentials.store")
        return entries

    def _write(self, key: bytes, entries: Mapping[str, Mapping[str, Any]]) -> None:
        nonce = os.urandom(12)
        plain = json.dumps({"entries": entries}, sort_keys=True).encode("utf-8")
        sealed = AESGCM(key).encrypt(nonce, plain, FORMAT.encode("ascii"))
        envelope = {
            "format": FORMAT,
            "nonce": base64.b64encode(nonce).decode("ascii"),
            "sealed": base64.b64encode(sealed).decode("ascii"),
        }
        self.config.store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(self.config.store, json.dumps(envelope).encode("ascii") + b"\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (``credentials add`` and ``remove`` from two shells)."""
        self.config.store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = self.config.store.with_name(f".{self.config.store.name}.lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _check_store_owner(self) -> None:
        """``add`` and ``remove`` run as the account that owns the store: the agent's."""
        try:
            owner = os.lstat(self.config.key_file).st_uid
        except FileNotFoundError:
            return
        # Why: entries written by another account (root "helping out") would be unusable by
        # the agent, or would take the store files away from it; refuse, as JS7 does.
        if owner != os.geteuid():
            raise CredentialForeign(
                f"the credential store {self.config.key_file} belongs to uid {owner}, not to uid {os.geteuid()}; "
                "run `jobsts agent credentials` as the agent's account",
                owner=owner,
            )

    # -- the interface ---------------------------------------------------------------------
    def exists(self) -> bool:
        return os.path.lexists(self.config.key_file)

    def infos(self) -> dict[str, CredentialInfo]:
        """Every key with its user, kind and owner (no secrets); empty when there is no store."""
        if not self.exists():
            return {}
        return {name: _info(name, entry) for name, entry in sorted(self._read(self._key(create=False)).items())}

    def put(
        self,
        key: str,
        user: str,
        *,
        password: str | None = None,
        private_key: str | None = None,
        passphrase: str | None = None,
        replace: bool = False,
    ) -> bool:
        """Add (or with ``replace`` overwrite) ``key``; returns whether it existed before."""
        check_key_name(key)
        self._check_store_owner()
        with self._locked():
            secret = self._key(create=True)
            entries = self._read(secret)
            existed = key in entries
            if existed and not replace:
                raise CredentialBadInput(
                    f"credential key {key!r} exists already; use --replace to overwrite it", key=key
                )
            entries[key] = {
                "user": user,
                "kind": "password" if private_key is None else "ssh_key",
                "password": password,
                "private_key": private_key,
                "passphrase": passphrase,
                "added_by": os.geteuid(),
                "added_at": int(time.time()),
            }
            self._write(secret, entries)
        return existed

    def remove(self, key: str) -> bool:
        """Remove ``key``; returns whether it was there."""
        self._check_store_owner()
        with self._locked():
            secret = self._key(create=False)
            entries = self._read(secret)
            if entries.pop(key, None) is None:
                return False
            self._write(secret, entries)
        return True

    def secret(self, key: str) -> Secret:
        """Open ``key`` for use by this process (the agent): refused if missing or added by another account."""
        infos = self._read(self._key(create=False)) if self.exists() else {}
        entry = infos.get(key)
        if entry is None:
            raise missing(key)
        check_owner(_info(key, entry))
        return Secret(key, entry["user"], entry.get("password"), entry.get("private_key"), entry.get("passphrase"))


def _info(key: str, entry: Mapping[str, Any]) -> CredentialInfo:
    return CredentialInfo(
        key=key,
        user=str(entry.get("user", "")),
        kind=str(entry.get("kind", "password")),
        added_by=int(entry.get("added_by", -1)),
        added_at=int(entry.get("added_at", 0)),
        has_password=entry.get("password") is not None,
        has_passphrase=entry.get("passphrase") is not None,
    )


def missing(key: str) -> CredentialMissing:
    """JS7's WINDOWS-1168 in jobsts words: the message names the key and how to add it."""
    return CredentialMissing(
        f"the agent's credential store has no entry named {key!r}; "
        f"add it as the agent's account with `{ADD_HINT.format(key=key)}`",
        key=key,
    )


def check_owner(info: CredentialInfo) -> None:
    """A key is usable only by the OS account that added it (as with the Windows Credential Manager)."""
    me = os.geteuid()
    if info.added_by != me:
        raise CredentialForeign(
            f"credential key {info.key!r} was added by uid {info.added_by}, not by the agent's account (uid {me}); "
            f"add it again as the agent's account with `{ADD_HINT.format(key=info.key)}`",
            key=info.key,
            added_by=info.added_by,
        )
