"""A real STS in this process for CLI tests: the demo's two LDIF realms, SQLite, a master key,
served by werkzeug in a thread on a listening socket the test holds (``tests/loopback.py``).

``base_url`` may differ from the URL the socket answers at, as behind a proxy. ``EmbeddedSts``
logs users in, registers nodes with a key of their own, and stops cleanly.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from realms.tokens.keys import public_jwk
from sts.app import create_app
from sts.commands.demo_files import SUFFIXES, realm_ldif, sts_toml
from sts.keys.master_key import create_key_file
from tests.loopback import listening_socket, port_of


def write_sts_files(directory: Path, base_url: str) -> Path:
    """The STS configuration (SQLite ``jobsts.db``, ``master.key``) and its realms in ``directory``."""
    (directory / "realms").mkdir(parents=True)
    for realm in SUFFIXES:
        (directory / "realms" / f"{realm}.ldif").write_text(realm_ldif(realm), encoding="utf-8")
    config = directory / "sts.toml"
    config.write_text(sts_toml(base_url), encoding="utf-8")
    create_key_file(directory / "master.key")
    return config


class EmbeddedSts:
    """``create_app(config)`` served on 127.0.0.1; ``url`` is where it answers."""

    def __init__(self, config: Path) -> None:
        self.app = create_app(config)
        self.sock = listening_socket()
        self.url = f"http://127.0.0.1:{port_of(self.sock)}"
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, fd=self.sock.fileno())
        self.thread = threading.Thread(target=self.server.serve_forever, name="embedded-sts", daemon=True)
        self.thread.start()
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def login(self, username: str, realm: str = "jobmgr") -> str:
        form = {"grant_type": "password", "username": username, "password": f"{username}-password"}
        response = self.http.post(f"/realms/{realm}/token", data=form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def call(self, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    def register_node(self, node_id: str, key_path: Path, realm: str = "jobmgr") -> None:
        """Make a node key (0600 PEM at ``key_path``) and register its public half as the admin."""
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
        key_path.write_bytes(pem)
        key_path.chmod(0o600)
        body = {"id": node_id, "realm": realm, "public_jwk": public_jwk(key.public_key(), "ES256")}
        self.call("POST", "/api/v1/nodes", self.login("admin"), body)

    def close(self) -> None:
        self.http.close()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=30)
        self.app.extensions["jobsts"].close()
        self.sock.close()
