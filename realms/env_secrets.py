"""Environment variables that may hold secrets, read directly or from a file (``<NAME>_FILE``).

Container platforms (Docker and Compose secrets, Kubernetes secret volumes, systemd's
``LoadCredential=``) hand a secret over as a file; putting it in the environment itself leaks it
to every child process and to ``/proc/<pid>/environ``. So wherever jobsts reads a variable
(``JOBSTS_DATABASE_URL``, an LDAP ``bind_password_env``, ...), ``<NAME>_FILE`` naming a file is
accepted instead: its content, without the final line break, is the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from realms.errors import ConfigError

FILE_SUFFIX = "_FILE"
MAX_SECRET_BYTES = 64 * 1024


def read_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of ``name``, else the content of the file ``<name>_FILE`` names, else None.

    Both set is a ``config.invalid`` error (which one would win is a guess); so is a file that
    cannot be read, is empty or is larger than 64 KiB."""
    environ = os.environ if environ is None else environ
    value = environ.get(name) or None
    file_name = environ.get(name + FILE_SUFFIX) or None
    if file_name is None:
        return value
    if value is not None:
        raise ConfigError(f"set {name} or {name}{FILE_SUFFIX}, not both", field=name)
    path = Path(file_name)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name}{FILE_SUFFIX}: cannot read {path}: {exc.strerror or exc}", field=name) from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"{name}{FILE_SUFFIX}: {path} is larger than 64 KiB", field=name)
    text = data.decode("utf-8", errors="strict").removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigError(f"{name}{FILE_SUFFIX}: {path} is empty", field=name)
    return text
