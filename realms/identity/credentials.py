"""Checks on a username and password before any registry sees them.

RFC 4513 §5.1.2: a simple bind with a DN and an empty password is an *unauthenticated*
bind that many servers answer with success. So an empty password, one of only spaces, or
one that SASLprep (RFC 4013, RFC 3454 table B.1) maps to nothing must never reach the
directory. Oversized values are refused to bound the work an anonymous caller can cause.
"""

from __future__ import annotations

import stringprep
import unicodedata

MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_BYTES = 1024


def _vanishes(ch: str) -> bool:
    # Why: SASLprep maps B.1 characters (soft hyphen, zero-width space, ...) to nothing and
    # C.1.2 spaces to U+0020, so a password made only of those is an empty password.
    return ch.isspace() or stringprep.in_table_b1(ch) or stringprep.in_table_c12(ch)


def usable_username(username: object) -> bool:
    """True when ``username`` may be looked up: non-empty, bounded, printable, no outer spaces."""
    if not isinstance(username, str) or not username or len(username) > MAX_USERNAME_LENGTH:
        return False
    if username != username.strip():
        return False
    # Why: NUL and other control/format characters have no place in a login name and are the
    # raw material of filter, DN and log injection; refuse them rather than escape them.
    return all(unicodedata.category(ch)[0] != "C" for ch in username)


def usable_password(password: object) -> bool:
    """True when ``password`` may be sent in a bind (RFC 4513 §5.1.2, RFC 4013)."""
    if not isinstance(password, str) or not password:
        return False
    try:
        size = len(password.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates cannot be sent at all
        return False
    if size > MAX_PASSWORD_BYTES:
        return False
    if "\x00" in password:
        # Why: a NUL truncates the password in C-string based servers and PAM modules.
        return False
    return not all(_vanishes(ch) for ch in password)
