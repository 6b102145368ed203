"""The per-app service container, reachable as ``current_services()`` inside a request.

Each piece (database, key store, registries, job manager table, throttle, ...) is built
once in ``init_app`` and shared by every request of the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from realms.registry import Registry
from sts.config import StsConfig
from sts.db import Database


@dataclass
class Services:
    config: StsConfig
    db: Database
    registries: dict[str, Registry] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def init_app(app: Flask, config: StsConfig) -> Services:
    services = Services(config=config, db=Database(config.database_url))
    for name, realm in config.realms.items():
        services.registries[name] = realm.open_registry()
    app.extensions["jobsts"] = services
    return services


def current_services() -> Services:
    services: Services = current_app.extensions["jobsts"]
    return services
