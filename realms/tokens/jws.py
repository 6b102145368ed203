"""Strict parsing of compact JWS segments (RFC 7515 §7.1), before any trust decision.

PyJWT parses leniently (the last duplicate member wins, padding and stray characters are
tolerated). A token that two parsers could read differently is refused here instead.
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from realms.tokens.errors import TokenMalformed

MAX_TOKEN_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_B64_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")


@dataclass(frozen=True, slots=True)
class ParsedJWS:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def b64url_decode(segment: str, what: str) -> bytes:
    # Why: only the canonical, unpadded base64url spelling is accepted (RFC 7515 §2), so the
    # bytes that were signed and the bytes we read cannot differ by a "malleable" encoding.
    if "=" in segment:
        raise TokenMalformed(f"{what} is padded base64url")
    remainder = len(segment) % 4
    if _BASE64URL.fullmatch(segment) is None or remainder == 1:
        raise TokenMalformed(f"{what} is not base64url")
    # The last character of a 2- or 3-character tail carries 4 or 2 unused bits; they must be 0.
    if remainder and _B64_VALUE[segment[-1]] & (0b1111 if remainder == 2 else 0b11):
        raise TokenMalformed(f"{what} is not canonical base64url")
    return binascii.a2b_base64(segment.encode("ascii").translate(_TO_STANDARD_ALPHABET) + b"=" * (-remainder % 4))


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise TokenMalformed(f"duplicate JSON member {duplicate[:40]!r}")
    return result


def _refuse_constant(name: str) -> Any:
    raise TokenMalformed(f"JSON constant {name} is not allowed")


_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)


def _too_deep(container: dict[str, Any] | list[Any], depth: int = 1) -> bool:
    if depth > MAX_JSON_DEPTH:
        return True
    children = container.values() if isinstance(container, dict) else container
    return any(_too_deep(child, depth + 1) for child in children if isinstance(child, dict | list))


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise TokenMalformed(f"{what} is not valid UTF-8") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise TokenMalformed(f"{what} is nested too deeply") from None
    except ValueError as exc:
        if isinstance(exc, TokenMalformed):
            raise
        raise TokenMalformed(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenMalformed(f"{what} is not a JSON object")
    if _too_deep(value):
        raise TokenMalformed(f"{what} is nested deeper than {MAX_JSON_DEPTH}")
    return value


def parse_compact(token: str | bytes) -> ParsedJWS:
    """Split and decode a compact JWS; every structural problem is ``TokenMalformed``."""
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
    header = json_object(b64url_decode(header_b64, "header"), "header")
    claims = json_object(b64url_decode(payload_b64, "payload"), "payload")
    signature = b64url_decode(signature_b64, "signature")
    return ParsedJWS(header, claims, f"{header_b64}.{payload_b64}".encode("ascii"), signature)
