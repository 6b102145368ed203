"""Strict parsing of compact JWS segments (RFC 7515 §7.1), before any trust decision.

PyJWT parses leniently (the last duplicate member wins, padding and stray characters are
tolerated). A token that two parsers could read differently is refused here instead.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realms.tokens.errors import TokenMalformed

MAX_TOKEN_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64_VALUE = {chr(c): i for i, c in enumerate(_ALPHABET)}
_UNUSED_BITS = (0, 0, 0b1111, 0b11)  # by len % 4: the unused low bits of the last character
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")
# A JSON string escape that decodes to a surrogate code point (U+D800..U+DFFF).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True, slots=True)
class ParsedJWS:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    # False when neither JSON text holds a surrogate escape: no string can hold an unpaired
    # surrogate, so the verifier may skip its walk over every string (``realms.text``).
    may_hold_surrogates: bool = True


def b64url_decode(segment: str, what: str) -> bytes:
    """The bytes of one unpadded base64url segment (RFC 7515 §2); ``TokenMalformed`` otherwise."""
    # Why: only the canonical, unpadded base64url spelling is accepted (RFC 7515 §2), so the
    # bytes that were signed and the bytes we read cannot differ by a "malleable" encoding.
    if "=" in segment:
        raise TokenMalformed(f"{what} is padded base64url")
    remainder = len(segment) % 4
    # "+" and "/" are the standard alphabet's; strict mode refuses every other character outside
    # it (whitespace, which the lenient decoder would skip) and any padding but the one added here.
    if remainder == 1 or "+" in segment or "/" in segment:
        raise TokenMalformed(f"{what} is not base64url")
    try:
        data = segment.encode("ascii").translate(_TO_STANDARD_ALPHABET) + _PADDING[remainder]
        decoded = binascii.a2b_base64(data, strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise TokenMalformed(f"{what} is not base64url") from None
    # The last character of a 2- or 3-character tail carries 4 or 2 unused bits; they must be 0.
    if remainder and _B64_VALUE[segment[-1]] & _UNUSED_BITS[remainder]:
        raise TokenMalformed(f"{what} is not canonical base64url")
    return decoded


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise TokenMalformed(f"duplicate JSON member {duplicate[:40]!r}")
    return result


def _refuse_constant(name: str) -> Any:
    raise TokenMalformed(f"JSON constant {name} is not allowed")


# One decoder for every segment: building one per call would rebuild its scanner each time.
_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
# The C scanner that ``JSONDecoder.decode`` calls through two Python frames and two regex matches.
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _decode(text: str) -> Any:
    """``_DECODER.decode(text)``: the scanner alone for a value that fills the whole text; the
    full decoder (surrounding whitespace, extra data, its errors) for anything else."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return _DECODER.decode(text)
    return value if end == len(text) else _DECODER.decode(text)


def _too_deep(container: dict[str, Any] | list[Any], depth: int = 1) -> bool:
    if depth > MAX_JSON_DEPTH:
        return True
    children = container.values() if isinstance(container, dict) else container
    return any(_too_deep(child, depth + 1) for child in children if isinstance(child, dict | list))


def _json_text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise TokenMalformed(f"{what} is not valid UTF-8") from None


def _json_value(text: str, what: str) -> dict[str, Any]:
    try:
        value = _decode(text)
    except RecursionError:
        raise TokenMalformed(f"{what} is nested too deeply") from None
    except ValueError as exc:
        if isinstance(exc, TokenMalformed):
            raise
        raise TokenMalformed(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenMalformed(f"{what} is not a JSON object")
    # Each level of nesting opens one bracket: with no more brackets than the limit (strings
    # included, so this over-counts), the value cannot be deeper and the walk is not needed.
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and _too_deep(value):
        raise TokenMalformed(f"{what} is nested deeper than {MAX_JSON_DEPTH}")
    return value


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    """A strict JSON object: UTF-8, no duplicate member, no NaN/Infinity, at most ``MAX_JSON_DEPTH`` deep."""
    return _json_value(_json_text(raw, what), what)


def may_hold_surrogates(json_text: str) -> bool:
    """True if ``json_text`` has a ``\\uD800``-``\\uDFFF`` escape (strict UTF-8 text holds no
    surrogate itself, so only such an escape can put one into a decoded string)."""
    return "\\u" in json_text and _SURROGATE_ESCAPE.search(json_text) is not None


def split_compact(token: str | bytes) -> tuple[str, str, str]:
    """The three segments of a compact JWS, after the type, size and shape checks."""
    if type(token) is str and len(token) <= MAX_TOKEN_BYTES:
        # The common case in one pass; any other shape goes through the checks below for its error.
        parts = token.split(".")
        if len(parts) == 3 and parts[0] and parts[1] and parts[2]:
            return parts[0], parts[1], parts[2]
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise TokenMalformed("token is not ASCII") from None
    if not isinstance(token, str):
        raise TokenMalformed("token is not a string")
    # Why: bound the work an unauthenticated caller can make us do before any signature check.
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenMalformed(f"token longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenMalformed("token is not a compact JWS of three segments")
    header_b64, payload_b64, signature_b64 = parts
    if not header_b64 or not payload_b64:
        raise TokenMalformed("token has an empty header or payload")
    if not signature_b64:
        raise TokenMalformed("token has no signature")
    return header_b64, payload_b64, signature_b64


def decode_segment(segment: str, what: str) -> tuple[dict[str, Any], bool]:
    """A header or payload segment as a strict JSON object, and whether its text may hold a
    surrogate (``may_hold_surrogates``); every problem is ``TokenMalformed``."""
    text = _json_text(b64url_decode(segment, what), what)
    # ``_json_value`` and ``may_hold_surrogates`` inlined for the common case (a whole object,
    # within the depth limit); anything else is decoded again by ``_json_value`` for its error.
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError, RecursionError):
        value, end = None, -1
    if end != len(text) or type(value) is not dict:
        return _json_value(text, what), may_hold_surrogates(text)
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and _too_deep(value):
        raise TokenMalformed(f"{what} is nested deeper than {MAX_JSON_DEPTH}")
    return value, "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None


def parse_compact(token: str | bytes) -> ParsedJWS:
    """Split and decode a compact JWS; every structural problem is ``TokenMalformed``."""
    header_b64, payload_b64, signature_b64 = split_compact(token)
    header, header_suspect = decode_segment(header_b64, "header")
    claims, claims_suspect = decode_segment(payload_b64, "payload")
    signature = b64url_decode(signature_b64, "signature")
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return ParsedJWS(header, claims, signing_input, signature, header_suspect or claims_suspect)
