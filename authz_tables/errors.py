"""Errors of the authorization tables, each with a stable code documented in ``docs/errors.md``.

``AuthzDenied`` (``authz.denied``) is the refusal the STS and the agent raise when a
``Decision`` says no; it carries ``.principal``, ``.role`` and ``.scope`` for their reports.
"""

from __future__ import annotations

from typing import ClassVar

from realms.errors import ConfigError, InputError, UnavailableError


class AuthzError(InputError):
    """Base of the authorization-table input errors."""

    code: ClassVar[str] = "authz.invalid"


class BadRole(AuthzError):
    """A role name is not in the role lattice."""

    code: ClassVar[str] = "authz.bad_role"


class BadScope(AuthzError):
    """A scope is neither ``*`` nor ``authgroup:``, ``remote:`` or ``credential:<name>``."""

    code: ClassVar[str] = "authz.bad_scope"


class BadEntry(AuthzError):
    """An entry (access ID, role, effect, scope) is malformed; names the line of a file."""

    code: ClassVar[str] = "authz.bad_entry"


class BadFile(AuthzError):
    """An import file is not valid CSV or JSON of the expected shape."""

    code: ClassVar[str] = "authz.bad_file"


class Conflict(AuthzError):
    """A file lists the same (access ID, role, scope) twice, or both allows and denies it."""

    code: ClassVar[str] = "authz.conflict"


class AuthzDenied(AuthzError):
    """The authorization table refused: ``.principal`` lacks ``.role`` on ``.scope``.

    Raised by ``Decision.raise_if_denied()``; the STS answers it with HTTP 403 and the agent
    reports it as the refusal code of step (e).
    """

    code: ClassVar[str] = "authz.denied"
    status: ClassVar[int] = 403

    def __init__(self, message: str, *, principal: str, role: str, scope: str) -> None:
        super().__init__(message, principal=principal, role=role, scope=scope)
        self.principal: str = principal
        self.role: str = role
        self.scope: str = scope


class AuthzConfigError(ConfigError):
    """No table is configured, or ``[authz] table`` in the configuration file is wrong."""

    code: ClassVar[str] = "authz.bad_config"


class AuthzUnavailable(UnavailableError):
    """The table's database could not be read or written (down, locked, or no schema)."""

    code: ClassVar[str] = "authz.unavailable"
