"""The per-app service container, reachable as ``current_services()`` inside a request.

Each piece (database, master key, key store, registries, job manager table, throttle, ...)
is built once in ``init_app`` and shared by every request of the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from authz_tables.store import AuthzTable
from realms.errors import ConfigError
from realms.registries.base import Registry
from sts.config import StsConfig
from sts.crypto import MasterKey
from sts.db import Database
from sts.keys import KeyStore
from sts.maintenance import Housekeeper
from sts.metrics import TimedRegistry
from sts.throttle import LoginThrottle


@dataclass
class Services:
    config: StsConfig
    db: Database
    registries: dict[str, Registry] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    master_key: MasterKey = field(init=False)
    keys: KeyStore = field(init=False)
    authz: AuthzTable = field(init=False)
    throttle: LoginThrottle = field(init=False)
    housekeeper: Housekeeper = field(init=False)

    def close(self) -> None:
        for registry in self.registries.values():
            registry.close()
        self.authz.close()
        self.db.dispose()


def build_services(config: StsConfig, *, migrate: bool = True) -> Services:
    """Open everything the STS needs. The schema is brought to head first (a no-op when it is
    there; concurrent starts serialise on a lock); ``migrate=False`` skips that."""
    master_key = MasterKey.load(config)  # first: refuse a loose key file before touching anything
    services = Services(config=config, db=Database(config.database_url))
    services.master_key = master_key
    try:
        if migrate:
            from sts.migrations import migrate as run_migrations

            run_migrations(services.db.engine)
        services.keys = KeyStore(services.db, master_key, config)
        services.keys.ensure_active()
    except BaseException as exc:
        services.db.dispose()
        if not isinstance(exc, SQLAlchemyError):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise ConfigError(f"database {services.db.engine.url.render_as_string(hide_password=True)} is not "
                          f"ready ({reason}); run jobsts init --config FILE", field="database_url") from None
    services.authz = AuthzTable(services.db.engine)
    services.throttle = LoginThrottle(services.db, config.throttle)
    services.housekeeper = Housekeeper(services.db, config.throttle.reset_seconds)
    for name, realm in config.realms.items():
        services.registries[name] = TimedRegistry(realm.open_registry())
    return services


def init_app(app: Flask, config: StsConfig) -> Services:
    services = build_services(config)
    app.extensions["jobsts"] = services
    return services


def current_services() -> Services:
    services: Services = current_app.extensions["jobsts"]
    return services
