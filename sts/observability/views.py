"""``/healthz`` (the process answers), ``/readyz`` (database, signing keys and every realm's
directory usable) and ``/metrics`` (Prometheus text format, all gunicorn workers merged)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from flask import Blueprint, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from realms.errors import JobstsError
from realms.registries.base import Registry
from sts.observability.metrics import FleetCollector, exposition
from sts.services import current_services

bp = Blueprint("health", __name__)
DIRECTORY_TIMEOUT = 3.0
# A name no directory holds: looking it up is one search with the service account, the
# cheapest request that proves the directory answers.
PROBE_USERNAME = "jobsts-readiness-probe"
_probes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jobsts-readyz")


def _probe(registry: Registry) -> None:
    registry.lookup(PROBE_USERNAME)


def directory_checks(registries: dict[str, Registry]) -> dict[str, str]:
    """Each realm's directory, probed concurrently, each within ``DIRECTORY_TIMEOUT`` seconds."""
    futures = {name: _probes.submit(_probe, registry) for name, registry in registries.items()}
    checks: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=DIRECTORY_TIMEOUT)
            checks[f"directory:{name}"] = "ok"
        except FutureTimeout:
            checks[f"directory:{name}"] = "timeout"
        except JobstsError:
            checks[f"directory:{name}"] = "unavailable"
    return checks


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    services = current_services()
    checks: dict[str, str] = {}
    try:
        with services.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError:
        checks["database"] = "unavailable"
    for realm in services.config.realms:
        try:
            checks[f"keys:{realm}"] = "ok" if services.keys.realm_keys(realm).active else "missing"
        except (JobstsError, SQLAlchemyError):
            checks[f"keys:{realm}"] = "unavailable"
    checks.update(directory_checks(services.registries))
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    from sts.jobs.ready import fleet_snapshot

    services = current_services()
    body, content_type = exposition(FleetCollector(lambda: fleet_snapshot(services)))
    return Response(body, content_type=content_type)
