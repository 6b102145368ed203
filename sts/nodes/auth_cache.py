"""The per-process cache of agent authentication: a node's record and "this jti is not revoked".

Every agent call needs both, and reading them (the node row plus an EXISTS on revoked jtis) was
half of a wait's time. The cache is invalidated exactly by ``sts_auth_version``, a single row
bumped in the same transaction as every change that must take effect at once: a token
revocation (``sts.oauth.revocation.revoke_jti``) and any ORM change of a node (register, update,
re-key, unregister, enrollment; the ``before_flush`` hook below). Each request re-reads that one
integer by primary key before it trusts the cache; a miss reads node, revocation and version in
one statement, so what is cached is never newer than the version it is filed under.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, event, exists, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, UOWTransaction

from sts.db import DatabaseUnavailable
from sts.nodes.models import AuthVersion, Node
from sts.oauth.models import RevokedToken

MAX_CACHED_NODES = 10_000


_NODES = Node.__table__
_COLUMNS = [column for column in _NODES.c if column.name != "last_seen_at"]
_VERSION = AuthVersion.__table__
_READ_VERSION = select(_VERSION.c.version).where(_VERSION.c.id == 1)
_BUMP = update(AuthVersion).where(AuthVersion.id == 1).values(version=AuthVersion.version + 1)


def read_auth_version(conn: Connection) -> int | None:
    """The current authentication version (one primary-key read), for ``NodeAuthCache.lookup``'s
    ``version``: one read after a batch of requests arrived serves every cache hit of the batch."""
    found = conn.execute(_READ_VERSION).scalar()
    return None if found is None else int(found)


def bump_auth_version(session: Session) -> None:
    """Invalidate every process's cache when this transaction commits."""
    session.connection().execute(_BUMP)


@event.listens_for(Session, "before_flush")
def _node_changed(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    # Why: a node's update, re-key or removal must refuse its old credentials from the very
    # next request; every ORM path that changes a node bumps the version in its own transaction.
    if any(isinstance(obj, Node) for obj in (*session.dirty, *session.deleted)):
        bump_auth_version(session)


@dataclass(frozen=True)
class _Entry:
    version: int
    jti: str
    values: dict[str, Any]


@dataclass(frozen=True)
class NodeAuth:
    """What an agent call learns: the registered node (``None`` if unknown) and whether its jti is revoked."""

    node: Node | None
    revoked: bool
    extra: Any = None


def _node_of(values: dict[str, Any]) -> Node:
    # A fresh transient object per request, so no caller can alter what the cache holds.
    return Node(
        **{
            **values,
            "authgroups": list(values["authgroups"]),
            "trusted_realms": list(values["trusted_realms"]),
            "public_jwk": dict(values["public_jwk"]),
        }
    )


class NodeAuthCache:
    """Bounded LRU of ``node id -> (version, jti, node record)``; only a registered node with an
    unrevoked jti is ever cached, and only under the version it was read with."""

    def __init__(self, max_nodes: int = MAX_CACHED_NODES) -> None:
        self.max_nodes = max_nodes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._hit_statements: dict[int, Select[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _hit_statement(self, extra: Any) -> Select[Any]:
        """``SELECT version[, extra]``, built once per ``extra`` (a module-level expression)."""
        statement = self._hit_statements.get(id(extra))
        if statement is None:
            extras = [] if extra is None else [extra.label("extra")]
            statement = select(_READ_VERSION.scalar_subquery().label("auth_version"), *extras)
            self._hit_statements[id(extra)] = statement
        return statement

    def lookup(
        self,
        engine: Engine,
        node_id: str,
        jti: str,
        conn: Connection | None = None,
        extra: Any = None,
        params: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> NodeAuth:
        """The node and the revocation state of ``jti``; a database failure is ``db.unavailable``.
        With ``conn``, read on that connection (the caller's, left open) instead of a new one.
        ``extra``, a scalar SQL expression, is read in the same statement (one round trip on a
        hit) with its bound ``params``, and returned as ``NodeAuth.extra`` of a registered node.
        ``version`` (without ``extra``): the authentication version the caller read after the
        request arrived (``read_auth_version``); a hit then needs no statement at all."""
        jti = jti[:128]
        if version is not None and extra is None:
            entry = self._hit(node_id, jti)
            # Why: the same check as a hit's own read; the caller's read came after the request
            # arrived, so a revocation or node change committed before it is never missed.
            if entry is not None and entry.version == version:
                return NodeAuth(_node_of(entry.values), False)
        try:
            if conn is not None:
                return self._lookup(conn, node_id, jti, extra, params or {})
            with engine.connect() as own:
                if own.dialect.name == "postgresql":
                    # Each read here is one statement: outside a transaction it is one round trip,
                    # not BEGIN + SELECT + ROLLBACK (READ COMMITTED gives each statement a snapshot
                    # either way).
                    own.execution_options(isolation_level="AUTOCOMMIT")
                return self._lookup(own, node_id, jti, extra, params or {})
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            # Why: fail closed; without a fresh version the cache must not answer, nor may a 500.
            raise DatabaseUnavailable(f"the database is unavailable ({type(exc).__name__}); retry shortly") from None

    def _hit(self, node_id: str, jti: str) -> _Entry | None:
        """The cached entry of ``node_id`` for this ``jti`` (moved to the LRU's end), if any."""
        with self._lock:
            entry = self._entries.get(node_id)
            if entry is None or entry.jti != jti:
                return None
            self._entries.move_to_end(node_id)
            return entry

    def _lookup(self, conn: Connection, node_id: str, jti: str, extra: Any, params: dict[str, Any]) -> NodeAuth:
        extras = [] if extra is None else [extra.label("extra")]
        entry = self._hit(node_id, jti)
        if entry is not None:
            current = conn.execute(self._hit_statement(extra), params).one()
            # Why: the cache is trusted only when nothing was revoked or changed since it
            # was filled; a failed read raises, so it never serves a stale entry.
            if current.auth_version == entry.version:
                return NodeAuth(_node_of(entry.values), False, current.extra if extras else None)
        revoked = exists().where(RevokedToken.__table__.c.jti == jti).label("revoked")
        version = _READ_VERSION.scalar_subquery().label("auth_version")
        row = conn.execute(select(*_COLUMNS, revoked, version, *extras).where(_NODES.c.id == node_id), params).first()
        if row is None:
            unknown = conn.execute(select(exists().where(RevokedToken.__table__.c.jti == jti))).scalar()
            return NodeAuth(None, bool(unknown))
        mapping = row._mapping
        values = {column.name: mapping[column.name] for column in _COLUMNS}
        if mapping["revoked"]:
            return NodeAuth(_node_of(values), True)
        found = mapping["extra"] if extras else None
        if mapping["auth_version"] is not None:
            with self._lock:
                self._entries[node_id] = _Entry(int(mapping["auth_version"]), jti, values)
                self._entries.move_to_end(node_id)
                while len(self._entries) > self.max_nodes:
                    self._entries.popitem(last=False)
        return NodeAuth(_node_of(values), False, found)
