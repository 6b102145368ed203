"""The one check that text is text: valid Unicode that encodes as UTF-8 (RFC 3629 §3).

Python strings may hold unpaired surrogates (U+D800..U+DFFF): JSON's ``"\\ud800"`` escape
decodes to one, and so does ``surrogateescape``. Such a string cannot be written to a log, a
database or a socket as UTF-8, so it turns into a 500 far from where it came in. Every boundary
(token claims, job spec strings, request fields, directory attributes, configuration) calls
``check_text`` or ``check_tree`` and raises the input's own error code instead.

``invisible_character`` names the characters an identifier must not hold: every Unicode
separator (category Z*: U+1680 OGHAM SPACE MARK, U+3000, ...), control, format (bidi overrides,
zero-width), private-use, unassigned and surrogate code points (category C*), and the default
ignorable fillers that render as nothing (Unicode 15 DerivedCoreProperties).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

from realms.errors import JobstsError

# Default-ignorable code points outside categories Z* and C* (they are letters or symbols that
# render blank): Hangul fillers, the Khmer inherent vowels, the Mongolian free variation
# selectors' neighbours and the braille blank.
_BLANK_LETTERS = frozenset({0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0})

MakeError = Callable[[str], JobstsError]


def is_utf8_text(value: str) -> bool:
    """True if ``value`` encodes as UTF-8, i.e. holds no unpaired surrogate."""
    # Why: ASCII is the overwhelmingly common case and needs no encoding attempt.
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_ascii_number(value: str) -> bool:
    """True if ``value`` is one or more of the ASCII digits 0-9: a whole number ``int()`` reads.

    ``str.isdigit`` alone also accepts superscripts, circled and other digits (``"²"``) that
    ``int()`` refuses with ValueError, and Arabic-Indic and other decimal digits it reads."""
    return value.isascii() and value.isdigit()


def check_text(value: str, what: str, make_error: MakeError) -> str:
    """Return ``value`` if it is valid UTF-8 text, else raise ``make_error(message)``."""
    if not is_utf8_text(value):
        position = next(i for i, ch in enumerate(value) if 0xD800 <= ord(ch) <= 0xDFFF)
        raise make_error(f"{what}: not valid Unicode (unpaired surrogate U+{ord(value[position]):04X} at {position})")
    return value


def _walk(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield f"{where} key", key
            yield from _walk(item, f"{where}.{key}" if is_utf8_text(str(key)) else f"{where}.?")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]")


def check_tree(value: Any, what: str, make_error: MakeError) -> None:
    """``check_text`` on every string of a decoded JSON value, object keys included."""
    for where, text in _walk(value, what):
        check_text(text, where, make_error)


def check_utf8_bytes(raw: bytes, what: str, make_error: MakeError) -> str:
    """Decode ``raw`` as strict UTF-8 (no replacement characters), else raise ``make_error``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise make_error(f"{what}: not valid UTF-8 (byte {exc.start})") from None


def invisible_character(value: str) -> str | None:
    """The first character of ``value`` that is a separator, control, format, private-use,
    unassigned, surrogate or blank-rendering code point, as ``U+XXXX``; ``None`` if none is."""
    if value.isascii() and value.isprintable() and " " not in value:
        return None
    for ch in value:
        if ch == " " or unicodedata.category(ch)[0] in "ZC" or ord(ch) in _BLANK_LETTERS:
            return f"U+{ord(ch):04X}"
    return None
