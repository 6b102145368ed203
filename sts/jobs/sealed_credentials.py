"""Remote-host passwords given at submit: sealed to the target node's key, dropped at the end.

The STS never holds such a password in the clear beyond the request that carries it: it is
sealed at once with ``realms.sealing.seal`` to the node's registered public key (bound to the
job id), delivered in the lease, and set to NULL as soon as the job reaches a final state,
whichever path gets it there (result, cancel, expiry, reaper).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from sqlalchemy import event

from realms.sealing import SealUnsupportedKey, seal
from sts.jobs.errors import JobError
from sts.jobs.models import Job
from sts.jobs.spec import RemoteCredentials
from sts.jobs.states import TERMINAL


class JobNodeKeyUnsealable(JobError):
    """The target node has no registered key that a login can be sealed to."""

    code: ClassVar[str] = "job.node_key_unsealable"
    status: ClassVar[int] = 409


def seal_remote_credentials(
    credentials: RemoteCredentials | None, node_jwk: dict[str, Any] | None, node_id: str, job_id: str
) -> str | None:
    """The sealed ``{"user", "password"}`` for the node, or None when none were given."""
    if credentials is None:
        return None
    if not node_jwk:
        raise JobNodeKeyUnsealable(
            f"node {node_id} has no registered public key to seal remote_credentials to; register its "
            "node key, or use a credential key of the agent's store (spec.credential)",
            node=node_id,
        )
    plaintext = json.dumps({"user": credentials.user, "password": credentials.password}).encode("utf-8")
    try:
        return seal(node_jwk, plaintext, job_id.encode("ascii"))
    except SealUnsupportedKey as exc:
        raise JobNodeKeyUnsealable(f"node {node_id}: {exc.message}", node=node_id) from None


_FINAL = frozenset(state.value for state in TERMINAL)


@event.listens_for(Job.state, "set")
def _drop_when_final(job: Job, value: str, _old: Any, _initiator: Any) -> None:
    # Why: the sealed copy is needed only until the agent leased and ran the job; a final job
    # keeps no copy at all, so a later compromise of the node key opens nothing stored.
    if getattr(value, "value", value) in _FINAL:
        job.sealed_credentials = None
