"""The job manager of one app: its ``JobEnv`` built from the service container, and the reaper.

The reaper runs without a thread of its own: every lease reaps its node first, and any job or
agent request runs a full pass at most every ``reap_interval`` seconds. Busy agents poll
continuously, so stale leases and overdue jobs are handled within seconds in practice.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import current_app

from realms.errors import UnavailableError
from sts import revocation
from sts.jobs.dispatch import reap_all
from sts.jobs.env import JobEnv
from sts.jobs.errors import JOB_STATUSES
from sts.nodes import get_node
from sts.problems import STATUS_BY_ERROR
from sts.services import current_services

log = logging.getLogger(__name__)
EXTENSION_KEY = "jobs"
_build_lock = threading.Lock()

STATUS_BY_ERROR.update(JOB_STATUSES)


def job_env() -> JobEnv:
    """This app's job manager (built on first use; settings from ``JOBSTS_JOB_*`` app config)."""
    services = current_services()
    env: JobEnv | None = services.extra.get(EXTENSION_KEY)
    if env is None:
        with _build_lock:
            env = services.extra.get(EXTENSION_KEY)
            if env is None:
                settings = current_app.config
                env = JobEnv(
                    db=services.db, config=services.config, signer=services.keys, cipher=services.master_key,
                    get_node=get_node, revoke=revocation.revoke_jti, list_revocations=revocation.list_active,
                    registries=services.registries, throttle=services.throttle,
                    lease_seconds=int(settings.get("JOBSTS_JOB_LEASE_SECONDS", 60)),
                    poll_interval=float(settings.get("JOBSTS_JOB_POLL_INTERVAL", 0.5)),
                    reap_interval=float(settings.get("JOBSTS_JOB_REAP_INTERVAL", 5.0)),
                )
                services.extra[EXTENSION_KEY] = env
    return env


def maybe_reap(env: JobEnv) -> None:
    """A full reaper pass if the last one in this process is older than ``reap_interval``."""
    now = time.monotonic()
    if now - env.last_reap < env.reap_interval:
        return
    env.last_reap = now
    try:
        changed = reap_all(env)
    except UnavailableError as exc:
        log.warning("job reaper skipped: %s", exc.message)
        return
    if changed:
        log.info("job reaper: %d job(s) requeued, lost or expired", changed)
