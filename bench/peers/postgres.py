"""Private PostgreSQL databases for peer benchmarks, on the server the jobsts bench uses.

Each run gets a database of its own (``bench_peers_<pid>_<n>``), created on entry and dropped
on exit (``WITH (FORCE)``: a peer that left a connection open must not leave it behind).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
_SEQUENCE = itertools.count()


@dataclass(frozen=True)
class PgTarget:
    """Where one database lives, renderable for each client library."""

    host: str
    port: int
    user: str
    dbname: str
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> PgTarget:
        """A libpq URL or key=value string; a SQLAlchemy URL (``postgresql+psycopg://``) too."""
        if "://" in url:
            scheme, rest = url.split("://", 1)
            url = "postgresql://" + rest if scheme.startswith("postgresql") or scheme == "postgres" else url
        params = conninfo_to_dict(url)
        password = params.get("password")
        return cls(
            host=str(params.get("host") or "127.0.0.1"),
            port=int(params.get("port") or 5432),
            user=str(params.get("user") or "postgres"),
            dbname=str(params.get("dbname") or "postgres"),
            password=str(password) if password is not None else None,
        )

    def with_database(self, dbname: str) -> PgTarget:
        return replace(self, dbname=dbname)

    @property
    def url(self) -> str:
        """``postgresql://`` URL (asyncpg, psycopg)."""
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    @property
    def conninfo(self) -> str:
        """libpq key=value string (Glewlwyd's ``conninfo``)."""
        parts = {"host": self.host, "port": str(self.port), "dbname": self.dbname, "user": self.user}
        if self.password:
            parts["password"] = self.password
        return " ".join(f"{key}={value}" for key, value in parts.items())


@contextmanager
def private_database(base_url: str = DEFAULT_POSTGRES, prefix: str = "bench_peers") -> Iterator[PgTarget]:
    """A fresh, empty database next to ``base_url``'s (same server, same role); dropped on exit."""
    admin = PgTarget.parse(base_url)
    target = admin.with_database(f"{prefix}_{os.getpid()}_{next(_SEQUENCE)}")
    with psycopg.connect(admin.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.dbname)))
    try:
        yield target
    finally:
        with psycopg.connect(admin.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target.dbname)))


def backend_pids(target: PgTarget, application_name: str | None = None) -> list[int]:
    """PIDs of the PostgreSQL backends connected to ``target.dbname`` (other than this query's),
    only those whose ``application_name`` matches when one is given (a server whose URL carries
    ``?application_name=...`` can then be told apart on a shared database).

    Their CPU is readable in /proc only when PostgreSQL runs on this machine, as in the bench."""
    query = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND (%(name)s::text IS NULL OR application_name = %(name)s::text)"
    )
    with psycopg.connect(target.url, autocommit=True) as conn:
        rows = conn.execute(query, {"name": application_name}).fetchall()
    return [int(row[0]) for row in rows]
