"""The root of every jobsts error, and the identity-layer errors.

Modelled on PyJWT's exceptions: one root type, input errors kept apart from
misconfiguration and from outages, and every error carrying data (``.code`` and
whatever it names: ``.realm``, ``.claim``, ``.node``, ...). Each concrete code is a
class with a stable dotted ``code``; ``docs/errors.md`` documents every one of them
(a test walks the subclasses and checks).

Each class also says how a server answers it: ``status`` (the HTTP status, RFC 9110 §15) and
``oauth_error`` (the RFC 6749 §5.2 ``error`` on the OAuth endpoints). Subclasses override them;
the STS's error boundary only renders what the class says.
"""

from __future__ import annotations

from typing import Any, ClassVar


class JobstsError(Exception):
    """Root of all jobsts errors. ``code`` is stable; ``message`` is one line for a person."""

    code: ClassVar[str] = "jobsts.error"
    status: ClassVar[int] = 500
    oauth_error: ClassVar[str] = "server_error"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = data
        for key, value in data.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InputError(JobstsError):
    """Something the caller sent was refused: bad input, bad credentials, an untrusted token."""

    code: ClassVar[str] = "input.invalid"
    status: ClassVar[int] = 400
    oauth_error: ClassVar[str] = "invalid_request"


class ConfigError(JobstsError):
    """The service or agent is misconfigured. Raised at start, never because of caller input."""

    code: ClassVar[str] = "config.invalid"


class UnavailableError(JobstsError):
    """A dependency (directory, database, STS) could not answer. Never a verdict on the caller."""

    code: ClassVar[str] = "service.unavailable"
    status: ClassVar[int] = 503
    oauth_error: ClassVar[str] = "temporarily_unavailable"


class AccessIdInvalid(InputError):
    code: ClassVar[str] = "access_id.invalid"


class LoginFailed(InputError):
    """Unknown user, wrong password, ambiguous match or disabled account: one answer for all."""

    code: ClassVar[str] = "login.failed"
    oauth_error: ClassVar[str] = "invalid_grant"


class RegistryUnavailable(UnavailableError):
    """The realm's directory could not answer (refused, timeout, TLS failure, server error)."""

    code: ClassVar[str] = "ldap.unavailable"


class RegistryTLSError(RegistryUnavailable):
    """TLS could not be established or verified; no credential was sent."""

    code: ClassVar[str] = "ldap.tls"


class RegistryRefused(JobstsError):
    """The password was right, but the directory's answer cannot be vouched for in a token.

    Not an outage: retrying gives the same answer until the directory (or the realm's
    settings) change, so it is never ``temporarily_unavailable``.
    """

    code: ClassVar[str] = "ldap.refused"
    # Why 400: RFC 6749 §5.2 answers every token-endpoint refusal but invalid_client with 400.
    status: ClassVar[int] = 400
    oauth_error: ClassVar[str] = "invalid_grant"


class RegistryTooManyGroups(RegistryRefused):
    """The user is in more groups than the realm's ``max_groups`` (or the server's size limit)."""

    code: ClassVar[str] = "ldap.too_many_groups"


class RegistryValueInvalid(RegistryRefused):
    """An attribute value of the user or of one of their groups is not valid UTF-8 text."""

    code: ClassVar[str] = "ldap.value_invalid"


class RealmUnknown(InputError):
    """The name is not one of the configured realms."""

    code: ClassVar[str] = "realm.unknown"
    status: ClassVar[int] = 404


class UserUnknown(InputError):
    """The realm's registry has no such user."""

    code: ClassVar[str] = "user.unknown"
    status: ClassVar[int] = 404
