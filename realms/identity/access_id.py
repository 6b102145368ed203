"""Access IDs: the stable, realm-qualified names of principals (docs/architecture.md, "The trust model").

Forms, exactly:

* ``user:<realm>/<unique id>`` and ``group:<realm>/<unique id>``
* ``special:EVERYONE``, ``special:ALL_AUTHENTICATED``, ``special:ALL_AUTHENTICATED_IN_TRUSTED_REALMS``
* ``node:<node id>``

``parse(format(x)) == x`` and ``format(parse(s)) == s`` for every valid value: there is
exactly one spelling of each access ID, so authorization can match on the string.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from realms.errors import AccessIdInvalid
from realms.text import invisible_character

REALM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
NODE_ID = REALM_NAME
MAX_UNIQUE_ID_LENGTH = 1024


class AccessIdKind(enum.Enum):
    USER = "user"
    GROUP = "group"
    SPECIAL = "special"
    NODE = "node"


class Special(enum.Enum):
    EVERYONE = "EVERYONE"
    ALL_AUTHENTICATED = "ALL_AUTHENTICATED"
    ALL_AUTHENTICATED_IN_TRUSTED_REALMS = "ALL_AUTHENTICATED_IN_TRUSTED_REALMS"


def is_valid_realm_name(name: str) -> bool:
    return REALM_NAME.fullmatch(name) is not None


def check_realm_name(name: str) -> str:
    """Return ``name`` if it is a valid realm name, else raise ``AccessIdInvalid``."""
    if not isinstance(name, str) or not is_valid_realm_name(name):
        raise AccessIdInvalid(f"bad realm name {name!r}: expected [A-Za-z0-9][A-Za-z0-9._-]{{0,62}}")
    return name


def _check_unique_id(unique_id: str) -> str:
    if not unique_id:
        raise AccessIdInvalid("empty unique id in access ID")
    if len(unique_id) > MAX_UNIQUE_ID_LENGTH:
        raise AccessIdInvalid(f"unique id longer than {MAX_UNIQUE_ID_LENGTH} characters")
    # Why: control, format (bidi overrides, zero-width), separator (U+1680 OGHAM SPACE MARK,
    # U+3000, ...) and blank-rendering characters let two different access IDs look identical to
    # an admin, or smuggle line breaks into logs and CSV imports. Refusing them keeps "what you
    # see is what matches". The one separator allowed is the ASCII space inside a name
    # ("Domain Users"), never at either end.
    bad = invisible_character(unique_id.replace(" ", "x"))
    if bad is not None:
        raise AccessIdInvalid(f"invisible, separator, control or format character {bad} in access ID")
    if unique_id != unique_id.strip():
        raise AccessIdInvalid("leading or trailing whitespace in access ID")
    return unique_id


@dataclass(frozen=True, slots=True)
class AccessId:
    """One parsed access ID. Build with the constructors, ``parse``, or ``AccessId(kind, realm, name)``.

    For ``user`` and ``group``, ``realm`` and ``name`` (the unique id) are set; for ``special``,
    ``realm`` is empty and ``name`` is the special subject; for ``node``, ``realm`` is empty and
    ``name`` is the node id.
    """

    kind: AccessIdKind
    realm: str
    name: str
    # The canonical spelling, computed once: access IDs are formatted on every decision.
    _text: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind in (AccessIdKind.USER, AccessIdKind.GROUP):
            check_realm_name(self.realm)
            _check_unique_id(self.name)
        elif self.kind is AccessIdKind.SPECIAL:
            if self.realm or self.name not in {s.value for s in Special}:
                raise AccessIdInvalid(f"unknown special subject {self.name!r}")
        elif self.kind is AccessIdKind.NODE:
            if self.realm or NODE_ID.fullmatch(self.name) is None:
                raise AccessIdInvalid(f"bad node id {self.name!r}")
        if self.kind in (AccessIdKind.USER, AccessIdKind.GROUP):
            text = f"{self.kind.value}:{self.realm}/{self.name}"
        else:
            text = f"{self.kind.value}:{self.name}"
        object.__setattr__(self, "_text", text)

    @classmethod
    def user(cls, realm: str, unique_id: str) -> AccessId:
        return cls(AccessIdKind.USER, realm, unique_id)

    @classmethod
    def group(cls, realm: str, unique_id: str) -> AccessId:
        return cls(AccessIdKind.GROUP, realm, unique_id)

    @classmethod
    def special(cls, subject: Special) -> AccessId:
        return cls(AccessIdKind.SPECIAL, "", subject.value)

    @classmethod
    def node(cls, node_id: str) -> AccessId:
        return cls(AccessIdKind.NODE, "", node_id)

    @classmethod
    def parse(cls, text: str) -> AccessId:
        """Parse the one canonical spelling of an access ID; anything else raises ``AccessIdInvalid``."""
        if not isinstance(text, str):
            raise AccessIdInvalid(f"access ID must be a string, not {type(text).__name__}")
        if len(text) > MAX_UNIQUE_ID_LENGTH + 80:
            raise AccessIdInvalid("access ID too long")
        kind_text, sep, rest = text.partition(":")
        if not sep:
            raise AccessIdInvalid(f"access ID {text[:80]!r} has no kind: expected user:, group:, special: or node:")
        try:
            kind = AccessIdKind(kind_text)
        except ValueError:
            raise AccessIdInvalid(f"unknown access ID kind {kind_text[:20]!r}") from None
        if kind in (AccessIdKind.USER, AccessIdKind.GROUP):
            realm, slash, unique_id = rest.partition("/")
            if not slash:
                raise AccessIdInvalid(f"access ID {text[:80]!r} has no realm: expected {kind_text}:<realm>/<id>")
            return cls(kind, realm, unique_id)
        return cls(kind, "", rest)

    def __str__(self) -> str:
        return self._text

    def __lt__(self, other: AccessId) -> bool:
        """Sorted by canonical spelling, so listings and exports have one stable order."""
        return self._text < other._text

    @property
    def text(self) -> str:
        return self._text


EVERYONE = AccessId.special(Special.EVERYONE)
ALL_AUTHENTICATED = AccessId.special(Special.ALL_AUTHENTICATED)
ALL_AUTHENTICATED_IN_TRUSTED_REALMS = AccessId.special(Special.ALL_AUTHENTICATED_IN_TRUSTED_REALMS)
