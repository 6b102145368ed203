"""``/healthz`` (the process answers) and ``/readyz`` (database and signing keys usable)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from realms.errors import JobstsError
from sts.services import current_services

bp = Blueprint("health", __name__)


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
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
