"""The console's own refusals (documented in docs/errors.md). Pages render them as HTML."""

from __future__ import annotations

from typing import ClassVar

from realms.errors import InputError


class ConsoleSignedOut(InputError):
    """No console session, or one that ended: the browser is sent to the sign-in page."""

    code: ClassVar[str] = "console.signed_out"
    status: ClassVar[int] = 401


class ConsoleCsrf(InputError):
    """A state-changing console request without this session's CSRF token."""

    code: ClassVar[str] = "console.csrf"
    status: ClassVar[int] = 403


class ConsoleLoginInvalid(InputError):
    """A callback that does not belong to a sign-in this browser started (state, cookie, issuer)."""

    code: ClassVar[str] = "console.login_invalid"
    status: ClassVar[int] = 400
