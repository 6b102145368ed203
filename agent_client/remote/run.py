"""Run a decided remote job: open its credential from the store, then the SSH executor.

The secret is opened only here, after the decision allowed the job and the STS confirmed
``/start``, and is dropped when the job ends; it never enters the decision, the trace, the
result or a log line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent_client.config import Limits
from agent_client.credentials.store import CredentialStore, Secret
from agent_client.executors.base import ExecResult
from agent_client.remote.job import RemoteJob
from agent_client.remote.ssh import RemoteTarget, run_remote_job
from realms.errors import JobstsError
from realms.wire.spec import JobSpec

EXECUTOR_NAME = "ssh"


def run_decided_remote_job(
    job: RemoteJob,
    spec: JobSpec,
    store: CredentialStore | None,
    limits: Limits,
    cancel: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
    *,
    submitted: Secret | None = None,
) -> ExecResult:
    """Open the credential (or use the login given at submit) and run ``spec`` on the job's
    remote host; failures become results."""
    if submitted is not None:
        return run_remote_job(RemoteTarget(job.host, submitted, job.sudo_user), spec, limits, cancel, on_tick)
    try:
        if store is None:
            raise JobstsError("the agent has no credential store configured")
        secret = store.secret(job.credential.key)
    except JobstsError as exc:
        return ExecResult(None, "", "", exc.code, exc.message)
    return run_remote_job(RemoteTarget(job.host, secret, job.sudo_user), spec, limits, cancel, on_tick)
