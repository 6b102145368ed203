"""A remote-host login given at submit: sealed by the STS to this node's key, opened here.

Only this agent holds the node key, so only it can open the copy; the job id is bound in, so a
copy moved onto another job does not open. The opened password lives in a ``Secret`` (whose
repr hides it) for the one job, and is never written anywhere.
"""

from __future__ import annotations

import json

from agent_client.credentials.store import Secret
from realms.errors import JobstsError
from realms.sealing import OpeningKey, SealedInvalid, open_sealed
from realms.wire.spec import SUDO_USER

SUBMITTED_KEY = "submitted-login"


def open_submitted_login(node_key: OpeningKey | None, sealed: str | None, job_id: str) -> Secret | JobstsError | None:
    """The opened login, ``None`` when the lease carried none, or the error to refuse the job with."""
    if sealed is None:
        return None
    if node_key is None:
        return SealedInvalid(f"job {job_id} carries a sealed login but this agent holds no node key")
    try:
        login = json.loads(open_sealed(node_key, sealed, job_id.encode("ascii")))
    except SealedInvalid as exc:
        return exc
    except ValueError:
        return SealedInvalid(f"the sealed login of job {job_id} is not a JSON object")
    user, password = (login.get(name) if isinstance(login, dict) else None for name in ("user", "password"))
    if not isinstance(user, str) or SUDO_USER.fullmatch(user) is None or not isinstance(password, str):
        return SealedInvalid(f"the sealed login of job {job_id} lacks a valid user and password")
    return Secret(SUBMITTED_KEY, user, password=password)
