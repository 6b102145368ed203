"""Flask fixtures in the flaskr style (``app``, ``client``, ``runner``) and helpers that build a
configured STS on a temp dir: a master key file of mode 0600, a SQLite (or PostgreSQL) database,
and the seed realms ``jobmgr`` and ``cellB``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from sts import create_app
from sts.config import StsConfig, load_sts_config
from sts.keys.master_key import create_key_file
from sts.services import Services
from tests.ldap_harness import ldif_realm_table
from tests.sts.fakes import SpyRegistry, user_id

BASE_URL = "https://sts.test"
ADMIN = user_id("jobmgr", "admin")


def _toml(value: Any) -> str:
    return (
        json.dumps(value)
        if isinstance(value, str | list)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def write_sts_toml(
    directory: Path,
    database_url: str,
    tables: list[dict[str, Any]],
    *,
    per_address_failure_factor: int = 20,
    sts: dict[str, Any] | None = None,
) -> Path:
    """Write ``sts.toml`` (and a 0600 master key) on ``directory`` over ``[[realms]]`` tables such as
    ``ldif_realm_table(name)`` or ``slapd.realm_table(name)``; a table's ``token`` becomes ``[realms.token]``;
    ``sts``: more ``[sts]`` settings."""
    key_file = directory / "master.key"
    if not key_file.exists():
        create_key_file(key_file)
    lines = [
        "[sts]",
        f"base_url = {_toml(BASE_URL)}",
        f"database_url = {_toml(database_url)}",
        'master_key_file = "master.key"',
        f"audience = {_toml(BASE_URL + '/api')}",
        f"bootstrap_admins = {_toml([str(ADMIN)])}",
        *(f"{key} = {_toml(value)}" for key, value in (sts or {}).items()),
        "",
        "[throttle]",
        "failure_factor = 3",
        "wait_increment_seconds = 60",
        "max_wait_seconds = 900",
        f"per_address_failure_factor = {per_address_failure_factor}",
    ]
    for table in tables:
        lines += ["", "[[realms]]", f"name = {_toml(table['name'])}", "[realms.registry]"]
        lines += [f"{key} = {_toml(value)}" for key, value in table["registry"].items()]
        if "token" in table:
            lines += ["[realms.token]"] + [f"{key} = {_toml(value)}" for key, value in table["token"].items()]
    path = directory / "sts.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(
    tmp_path: Path,
    database_url: str,
    algorithms: dict[str, str] | None = None,
    realm_names: tuple[str, ...] = ("jobmgr", "cellB"),
) -> Path:
    """Write an STS TOML file on ``tmp_path``: LDIF realms over the seed files, a 0600 master key."""
    tables = [
        {**ldif_realm_table(name), "token": {"algorithm": (algorithms or {}).get(name, "ES256")}}
        for name in realm_names
    ]
    return write_sts_toml(tmp_path, database_url, tables)


def make_config(tmp_path: Path, database_url: str, **overrides: Any) -> StsConfig:
    """A validated STS configuration from ``write_config`` (no environment overrides)."""
    path = write_config(
        tmp_path, database_url, overrides.pop("algorithms", None), overrides.pop("realm_names", ("jobmgr", "cellB"))
    )
    return replace(load_sts_config(path, environ={}), **overrides)


def spy_on_registries(application: Flask) -> None:
    """Wrap every realm's registry in a ``SpyRegistry`` (outages, hidden users, call counts)."""
    found: Services = application.extensions["jobsts"]
    for name, registry in list(found.registries.items()):
        found.registries[name] = SpyRegistry(registry)


@pytest.fixture
def sts_config(tmp_path: Path, database_url: str) -> StsConfig:
    return make_config(tmp_path, database_url)


@pytest.fixture
def app(sts_config: StsConfig) -> Iterator[Flask]:
    application = create_app(sts_config)
    application.config["TESTING"] = True
    spy_on_registries(application)
    yield application
    application.extensions["jobsts"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def services(app: Flask) -> Services:
    found: Services = app.extensions["jobsts"]
    return found


def login(client: FlaskClient, username: str, realm: str = "jobmgr", password: str | None = None) -> dict[str, Any]:
    """Password grant; returns the token response (asserts success)."""
    response = client.post(
        f"/realms/{realm}/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": f"{username}-password" if password is None else password,
        },
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin_token(client: FlaskClient) -> str:
    return str(login(client, "admin")["access_token"])


@pytest.fixture
def mint(services: Services) -> Callable[..., str]:
    """Sign arbitrary claims with a realm's real active key (for verification tests)."""

    def _mint(realm: str = "jobmgr", typ: str = "at+jwt", **claims: Any) -> str:
        now = int(time.time())
        base = {
            "iss": services.config.issuer(realm),
            "sub": str(user_id("jobmgr", "john")) if realm == "jobmgr" else str(user_id(realm, "john")),
            "aud": services.config.audience,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
            "realm": realm,
            "groups": [],
            "preferred_username": "john",
        }
        base.update(claims)
        for name in [k for k, v in base.items() if v is None]:
            del base[name]
        return services.keys.sign(realm, base, typ)

    return _mint


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def node_keypair(algorithm: str = "ES256") -> tuple[Any, dict[str, str]]:
    """A node's private key and the public JWK to register."""
    from realms.tokens.keys import public_jwk
    from sts.keys.material import generate_private_key

    private = generate_private_key(algorithm)
    return private, public_jwk(private.public_key(), algorithm)


def assertion(private: Any, node_id: str, audience: str, algorithm: str = "ES256", **overrides: Any) -> str:
    """An RFC 7523 client assertion as the agent builds it."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": node_id,
        "sub": node_id,
        "aud": audience,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 120,
    }
    claims.update(overrides)
    headers = overrides.pop("headers", None) if "headers" in overrides else None
    claims.pop("headers", None)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, private, algorithm=algorithm, headers=headers)


def agent_token_request(client: FlaskClient, node_id: str, signed: str, realm: str = "jobmgr") -> Any:
    return client.post(
        f"/realms/{realm}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": node_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        },
    )


@pytest.fixture
def registered_node(client: FlaskClient, admin_token: str) -> tuple[str, Any]:
    """Node ``node1`` of realm jobmgr, registered by the bootstrap admin; returns (id, private key)."""
    private, jwk = node_keypair()
    response = client.post(
        "/api/v1/nodes",
        headers=bearer(admin_token),
        json={"id": "node1", "realm": "jobmgr", "authgroups": ["web"], "public_jwk": jwk, "trusted_realms": ["cellB"]},
    )
    assert response.status_code == 201, response.get_json()
    return "node1", private
