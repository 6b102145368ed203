"""The one service container of an app, reachable as ``current_services()`` inside a request.

Each piece (database, master key, key store, registries, authorization table, login throttle,
login service, housekeeper) is built once by ``build_services`` and shared by every request.
The job manager reads its settings (``config.jobs``), its clock and its wake-up signal here too.
Nothing here reaches into a request; ``init_app`` and ``current_services`` are the Flask glue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from authz_tables.store import AuthzTable
from realms.errors import ConfigError
from realms.registries.base import Registry
from sts.config import StsConfig
from sts.db import Database, DatabaseUnavailable
from sts.keys import KeyStore
from sts.keys.master_key import MasterKey
from sts.nodes.auth_cache import NodeAuthCache
from sts.oauth.housekeeping import Housekeeper
from sts.oauth.login import LoginService
from sts.oauth.revocation import revoke_jti
from sts.oauth.throttle import LoginThrottle
from sts.observability import audit
from sts.observability.metrics import TOKENS_ISSUED, TimedRegistry


@dataclass
class Services:
    """Everything the STS needs, typed. ``clock`` is the job manager's time (tests move it)."""

    config: StsConfig
    db: Database
    master_key: MasterKey
    keys: KeyStore
    authz: AuthzTable
    throttle: LoginThrottle
    login: LoginService
    housekeeper: Housekeeper
    registries: dict[str, Registry]
    clock: Callable[[], float] = time.time
    # When this process last ran the job reaper (``sts.jobs.views.maybe_reap``).
    last_reap: float = 0.0
    # Wakes long-polling lease calls of this process when a job is submitted here.
    wakeup: threading.Condition = field(default_factory=threading.Condition)
    # This process's agent-authentication cache (node record, unrevoked jti), version-checked.
    node_auth: NodeAuthCache = field(default_factory=NodeAuthCache)

    @property
    def lease_seconds(self) -> int:
        return self.config.jobs.lease_seconds

    @property
    def poll_interval(self) -> float:
        return self.config.jobs.poll_interval

    @property
    def cipher(self) -> MasterKey:
        """What encrypts stored job tokens: the master key."""
        return self.master_key

    def now(self) -> int:
        return int(self.clock())

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A job manager transaction; a lost or unreachable database becomes ``db.unavailable`` (503)."""
        with self._unavailable():
            with self.db.session(immediate=immediate) as session:
                yield session

    @contextmanager
    def statements(self) -> Iterator[Connection]:
        """For work whose every write is ONE statement: on PostgreSQL each statement commits on its
        own (durable before it returns, one round trip instead of BEGIN, statement, COMMIT); on
        SQLite a ``BEGIN IMMEDIATE`` transaction. Errors as ``session``."""
        with self._unavailable():
            if self.db.is_sqlite:
                with self.db.session(immediate=True) as session:
                    yield session.connection()
            else:
                with self.db.engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                    yield conn

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            raise DatabaseUnavailable(
                f"the job database is unavailable ({type(exc.orig if hasattr(exc, 'orig') else exc).__name__}); "
                "retry shortly"
            ) from None
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise DatabaseUnavailable("the job database connection was lost; retry shortly") from None
            raise

    def revoke(self, session: Session, jti: str, exp: int, reason: str) -> None:
        """Revoke a token's ``jti`` until ``exp``, in the caller's transaction."""
        revoke_jti(session, jti, exp, reason)

    def notify_submitted(self) -> None:
        with self.wakeup:
            self.wakeup.notify_all()

    def wait_for_work(self, seconds: float) -> None:
        with self.wakeup:
            self.wakeup.wait(timeout=seconds)

    def close(self) -> None:
        for registry in self.registries.values():
            registry.close()
        self.authz.close()
        self.db.dispose()


def _token_issued(realm: str, claims: dict[str, Any], typ: str, kid: str) -> None:
    """Count and audit every signature (the key store's ``on_signed``)."""
    TOKENS_ISSUED.labels(typ).inc()
    subject = claims.get("sub")
    audit.record(
        "token.issued",
        actor=subject if isinstance(subject, str) else None,
        realm=realm,
        job=claims.get("job_id"),
        profile=typ,
        jti=claims.get("jti"),
        kid=kid,
        exp=claims.get("exp"),
    )


def build_services(config: StsConfig, *, migrate: bool = True) -> Services:
    """Open everything the STS needs. The schema is brought to head first (a no-op when it is
    there; concurrent starts serialise on a lock); ``migrate=False`` skips that."""
    master_key = MasterKey.load(config)  # first: refuse a loose key file before touching anything
    db = Database(config.database_url)
    keys = KeyStore(db, master_key, config, on_signed=_token_issued)
    try:
        if migrate:
            from sts.migrations import migrate as run_migrations

            run_migrations(db.engine)
        keys.ensure_active()
    except BaseException as exc:
        db.dispose()
        if not isinstance(exc, SQLAlchemyError):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise ConfigError(
            f"database {db.engine.url.render_as_string(hide_password=True)} is not "
            f"ready ({reason}); run jobsts init --config FILE",
            field="database_url",
        ) from None
    registries: dict[str, Registry] = {
        name: TimedRegistry(realm.open_registry()) for name, realm in config.realms.items()
    }
    throttle = LoginThrottle(db, config.throttle)
    return Services(
        config=config,
        db=db,
        master_key=master_key,
        keys=keys,
        authz=AuthzTable(db.engine),
        throttle=throttle,
        login=LoginService(registries, throttle),
        housekeeper=Housekeeper(db, config.throttle.reset_seconds, also=keys.maintain),
        registries=registries,
    )


def init_app(app: Flask, config: StsConfig) -> Services:
    services = build_services(config)
    app.extensions["jobsts"] = services
    return services


def current_services() -> Services:
    services: Services = current_app.extensions["jobsts"]
    return services
