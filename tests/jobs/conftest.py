"""Fixtures for the job manager: an STS app on the ``database_url`` database, the seed realms
(LDIF registries over tests/ldap, wrapped by tests/sts/fakes.SpyRegistry), roles in the job manager's table, registered
nodes, and tokens minted with the realms' real keys (as the token endpoint would)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from authz_tables.roles import Role
from realms.identity.access_id import AccessId
from realms.tokens.known_keys import jwk_thumbprint
from sts import create_app
from sts.config import JobSettings
from sts.db import make_engine
from sts.migrations import migrate
from sts.nodes.models import Node
from sts.services import Services
from tests.sts.conftest import make_config, node_keypair, spy_on_registries
from tests.sts.fakes import group_id, user_id

JOHN = user_id("jobmgr", "john")

# The key every node of a World is registered with; World.agent_token binds its tokens to it.
NODE_JWK = node_keypair()[1]


@dataclass
class World:
    """One running STS app, and helpers to act as users, admins and agents."""

    app: Flask
    client: FlaskClient
    services: Services

    @property
    def env(self) -> Services:
        """What the job manager runs on: the app's services (clock, settings, reaper stamp)."""
        return self.services

    def grant(self, principal: AccessId, role: Role) -> None:
        self.services.authz.grant(principal, role, changed_by="test")
        self.services.authz.refresh()

    def add_node(
        self,
        node_id: str = "node1",
        realm: str = "jobmgr",
        trusted: tuple[str, ...] = (),
        authgroups: tuple[str, ...] = ("batch",),
    ) -> None:
        with self.services.db.session() as session:
            session.add(
                Node(
                    id=node_id,
                    realm=realm,
                    authgroups=list(authgroups),
                    public_jwk=NODE_JWK,
                    trusted_realms=list(trusted),
                    created_at=0,
                    created_by="test",
                    updated_at=0,
                    updated_by="test",
                )
            )

    def user_token(self, username: str, realm: str = "jobmgr", ttl: int = 300) -> str:
        principal = self.services.registries[realm].lookup(username)
        assert principal is not None
        now = int(time.time())
        claims = {
            "iss": self.services.config.issuer(realm),
            "sub": str(principal.access_id),
            "aud": self.services.config.audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
            "realm": realm,
            "preferred_username": username,
            "groups": sorted(str(group) for group in principal.groups),
        }
        return self.services.keys.sign(realm, claims, "at+jwt")

    def agent_token(self, node_id: str = "node1", realm: str = "jobmgr") -> str:
        now = int(time.time())
        claims = {
            "iss": self.services.config.issuer(realm),
            "sub": f"node:{node_id}",
            "aud": self.services.config.audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            "cnf": {"jkt": self.node_key_thumbprint(node_id)},
        }
        return self.services.keys.sign(realm, claims, "agent+jwt")

    def node_key_thumbprint(self, node_id: str) -> str:
        """What an agent token of ``node_id`` is bound to: its registered key's thumbprint (read
        without a transaction, so statement counts around a request are not touched); for a node
        that is not registered, a thumbprint no key has."""
        with self.services.db.engine.connect() as conn:
            jwk = conn.execute(select(Node.public_jwk).where(Node.id == node_id)).scalar()
        try:
            return jwk_thumbprint(jwk) if isinstance(jwk, dict) else "no-such-key"
        except (KeyError, ValueError):
            return "no-usable-key"

    def as_user(self, username: str, realm: str = "jobmgr") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user_token(username, realm)}"}

    def as_agent(self, node_id: str = "node1", realm: str = "jobmgr") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agent_token(node_id, realm)}"}

    def submit(
        self, username: str = "john", expect: int = 201, headers: dict[str, str] | None = None, **body: Any
    ) -> dict[str, Any]:
        document = {"node": "node1", "type": "shell", "spec": {"argv": ["/bin/echo", "hi"]}, **body}
        headers = {**self.as_user(username), **(headers or {})}
        response = self.client.post("/api/v1/jobs", json=document, headers=headers)
        assert response.status_code == expect, response.get_json()
        result: dict[str, Any] = response.get_json()
        return result

    def lease(self, node_id: str = "node1", wait: float = 0) -> dict[str, Any] | None:
        response = self.client.post("/api/v1/agent/lease", json={"wait": wait}, headers=self.as_agent(node_id))
        if response.status_code == 204:
            return None
        assert response.status_code == 200, response.get_json()
        result: dict[str, Any] = response.get_json()
        return result

    def agent_post(self, path: str, body: dict[str, Any] | None = None, node_id: str = "node1") -> Any:
        return self.client.post(f"/api/v1/agent/{path}", json=body or {}, headers=self.as_agent(node_id))


def migrate_database(database_url: str) -> None:
    """What ``jobsts init`` does: bring the schema to head (SQLite apps also do it on start)."""
    engine = make_engine(database_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def build_world(tmp_path: Path, database_url: str, jobs: JobSettings | None = None) -> World:
    migrate_database(database_url)
    app = create_app(make_config(tmp_path, database_url, jobs=jobs or JobSettings()))
    app.config.update(TESTING=True)
    spy_on_registries(app)
    services: Services = app.extensions["jobsts"]
    world = World(app, app.test_client(), services)
    world.grant(JOHN, Role.OPERATOR)
    world.grant(user_id("jobmgr", "user1"), Role.OPERATOR)
    world.grant(group_id("jobmgr", "monitors"), Role.MONITOR)
    world.grant(user_id("cellB", "bob"), Role.OPERATOR)
    world.add_node("node1", "jobmgr", authgroups=("batch",))
    world.add_node("cellnode", "cellB", trusted=())
    world.add_node("trusting", "cellB", trusted=("jobmgr",))
    return world


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """user john and user1: operators; carol: monitor (group); user2: no role; admin: bootstrap
    administrator. Nodes: node1 (jobmgr), cellnode (cellB, trusts nobody), trusting (cellB,
    trusts jobmgr)."""
    built = build_world(tmp_path, database_url, JobSettings(poll_interval=0.05))
    yield built
    built.services.close()
