"""The canonical job digest bound into every ``job+jwt``.

Both the STS (when minting) and the agent (when checking) call this one function, so a job
spec edited after submission can never match its token.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN/Infinity: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def job_digest(job_id: str, node_id: str, job_type: str, spec: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of everything the agent will act on."""
    document = {"job_id": job_id, "node": node_id, "type": job_type, "spec": spec}
    return hashlib.sha256(canonical_json(document)).hexdigest()
