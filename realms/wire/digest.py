"""The canonical job digest bound into every ``job+jwt``.

Both the STS (when minting) and the agent (when checking) call this one function, so a job
spec edited after submission can never match its token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

# One encoder for every call: ``json.dumps`` with options builds a new encoder each time.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def _refuse_unknown(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder ``JSONEncoder.encode`` builds on each call, built once with the same options
# (no circular check: the values hashed are trees built from JSON); ``None`` where the C
# accelerator is missing, and ``_CANONICAL`` serves.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_CANONICAL = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, _refuse_unknown, _encode_string, None, ":", ",", True, False, False)
)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN/Infinity: one byte string per value."""
    if _C_CANONICAL is not None and isinstance(value, dict):
        return "".join(_C_CANONICAL(value, 0)).encode("utf-8")
    return _CANONICAL.encode(value).encode("utf-8")


def document_digest(job_id: str, node_id: str, job_type: str, canonical_spec: bytes) -> str:
    """``job_digest`` from the spec's canonical JSON bytes, encoded once (``JobSpec.canonical_bytes``).

    The document's keys in sorted order are job_id, node, spec, type: the bytes hashed are
    exactly ``canonical_json`` of the document ``job_digest`` builds.
    """
    encode = _encode_string
    head = f'{{"job_id":{encode(job_id)},"node":{encode(node_id)},"spec":'.encode()
    return hashlib.sha256(head + canonical_spec + f',"type":{encode(job_type)}}}'.encode()).hexdigest()


def job_digest(job_id: str, node_id: str, job_type: str, spec: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of everything the agent will act on."""
    document = {"job_id": job_id, "node": node_id, "type": job_type, "spec": spec}
    return hashlib.sha256(canonical_json(document)).hexdigest()
