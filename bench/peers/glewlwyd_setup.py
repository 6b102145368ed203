"""Glewlwyd 2.7's set-up for the bench: its configuration file, its PostgreSQL schema, its
process on a free loopback port, and its LDAP backend, OIDC plugin and scope over the admin API.

bench/peers/glewlwyd.py puts these together (``glewlwyd_server``) and measures logins.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from psycopg import sql

from bench.peers.postgres import PgTarget
from tests.ldap_harness import SERVICE_PASSWORD, SlapdServer

GLEWLWYD = os.environ.get("JOBSTS_GLEWLWYD", "/usr/bin/glewlwyd")
MODULES = Path("/usr/lib/glewlwyd")
# The package's full schema (init-core lacks the OIDC plugin's tables). Its seed row for the
# database user ``admin`` hashes the password with pgcrypto's crypt()/gen_salt().
SCHEMA = Path("/usr/share/doc/glewlwyd/database/init.postgre.sql.gz")
ADMIN_USER, ADMIN_PASSWORD = "admin", "password"  # seeded by SCHEMA; loopback only, database dropped after
KID = "bench-es256"


def available() -> bool:
    """Whether the Debian package is installed (the bench skips the peer otherwise)."""
    return Path(GLEWLWYD).exists() and SCHEMA.exists()


def _config(workdir: Path, port: int, database: PgTarget, log_level: str) -> str:
    """Glewlwyd's libconfig file: loopback only, no static files, cookies over plain HTTP.

    2.7.5 refuses to start ("secure connection is active but certificate is not valid") unless
    both ``secure_connection_*_file`` settings are present, even with TLS off; they are never read.
    """
    return f"""port={port}
bind_address="127.0.0.1"
external_url="http://127.0.0.1:{port}"
login_url="login.html"
api_prefix="api"
allow_origin="*"
log_mode="file"
log_level="{log_level}"
log_file="{workdir / "glewlwyd.log"}"
cookie_secure=0
cookie_same_site="empty"
session_expiration=3600
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
plugin_api_run_enabled=""
add_x_frame_option_header_deny=true
max_post_size=16778240
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="{MODULES / "user"}"
client_module_path="{MODULES / "client"}"
user_auth_scheme_module_path="{MODULES / "scheme"}"
plugin_module_path="{MODULES / "plugin"}"
use_secure_connection=false
secure_connection_key_file="/nonexistent/glewlwyd.key"
secure_connection_pem_file="/nonexistent/glewlwyd.pem"
hash_algorithm="SHA512"
database = {{ type = "postgre"
  conninfo = "{database.conninfo}" }};
"""


def load_schema(database: PgTarget, settings: Mapping[str, str] | None = None) -> None:
    """pgcrypto first (the seed admin's password hash needs it, at load and at every admin
    login), then the package's schema script, in one transaction. ``settings`` become the
    database's defaults for the sessions Glewlwyd opens later (``ALTER DATABASE ... SET``)."""
    script = gzip.decompress(SCHEMA.read_bytes()).decode()
    with psycopg.connect(database.url, autocommit=True) as conn:
        for name, value in (settings or {}).items():
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(database.dbname), sql.Identifier(name), sql.Literal(value)
                )
            )
    with psycopg.connect(database.url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        conn.execute("SET client_min_messages = warning")  # the script's DROP ... IF EXISTS notices
        conn.execute(script.encode())  # no parameters: psycopg sends it as one simple query


def _candidate_port() -> int:
    """A port that was free a moment ago; ``start`` retries when Glewlwyd cannot bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(workdir: Path, database: PgTarget, log_level: str, attempts: int = 3) -> tuple[subprocess.Popen[bytes], int]:
    """Start Glewlwyd and wait until it answers.

    Glewlwyd binds the port named in its configuration itself and cannot be handed a socket or
    port 0. So a free port is found by binding port 0 and closing it, and Glewlwyd binds it a
    moment later: another process could take it in between. When that happens Glewlwyd exits at
    once, and we retry on a new port.
    """
    for _ in range(attempts):
        port = _candidate_port()
        config = workdir / "glewlwyd.conf"
        config.write_text(_config(workdir, port, database, log_level), encoding="utf-8")
        with (workdir / "stdout.log").open("ab") as out:
            process = subprocess.Popen(
                [GLEWLWYD, f"--config-file={config}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=workdir,
            )
        give_up = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < give_up:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/config", timeout=1).status_code == 200:
                    return process, port
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        stop(process)
    log = (workdir / "glewlwyd.log").read_text(errors="replace")[-2000:] if (workdir / "glewlwyd.log").exists() else ""
    raise RuntimeError(f"Glewlwyd did not start (workdir {workdir}): {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to our own child only; Glewlwyd closes its connections and exits."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _signing_jwks() -> tuple[str, ec.EllipticCurvePublicKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    jwk.update({"kid": KID, "alg": "ES256", "use": "sig"})
    return json.dumps({"keys": [jwk]}), key.public_key()


def configure(url: str, slapd: SlapdServer, realm: str) -> ec.EllipticCurvePublicKey:
    """Over the admin API: the LDAP user backend, the OIDC plugin with an ES256 key (the
    2.7 ``jwks-private`` form), the group scope; then the seeded database backend is disabled
    so that a login asks LDAP only."""
    base = slapd.base_dn(realm)
    jwks, public_key = _signing_jwks()
    with httpx.Client(base_url=f"{url}/api", timeout=30) as admin:
        admin.post("/auth/", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD}).raise_for_status()
        steps: list[tuple[str, str, dict[str, Any] | None]] = [
            (
                "POST",
                "/mod/user/",
                {
                    "module": "ldap",
                    "name": "ldap",
                    "display_name": "LDAP",
                    "order_rank": 1,
                    "readonly": True,
                    "multiple_passwords": False,
                    "enabled": True,
                    "parameters": {
                        "uri": slapd.url,
                        "bind-dn": slapd.service_dn(realm),
                        "bind-password": SERVICE_PASSWORD,
                        "search-scope": "one",
                        "page-size": 50,
                        "base-search": f"ou=people,{base}",
                        "filter": "objectClass=inetOrgPerson",
                        "username-property": "uid",
                        "name-property": "displayName",
                        "email-property": "mail",
                        # Each memberOf value becomes a scope of the same name: 2.7.5 maps values
                        # only through "scope-property-match-correspondence"; "scope-match" is
                        # validated and otherwise ignored.
                        "scope-property": "memberOf",
                        "data-format": {},
                    },
                },
            ),
            (
                "POST",
                "/mod/plugin/",
                {
                    "module": "oidc",
                    "name": "oidc",
                    "display_name": "OIDC",
                    "enabled": True,
                    "parameters": {
                        "iss": url,
                        "jwks-private": jwks,
                        "default-kid": KID,
                        "jwks-show": True,
                        "access-token-duration": 3600,
                        "refresh-token-duration": 1209600,
                        "code-duration": 600,
                        "refresh-token-rolling": False,
                        "allow-non-oidc": True,
                        "auth-type-code-enabled": False,
                        "auth-type-token-enabled": False,
                        "auth-type-id-token-enabled": False,
                        "auth-type-password-enabled": True,
                        "auth-type-client-enabled": False,
                        "auth-type-refresh-enabled": True,
                        "auth-type-device-enabled": False,
                        "subject-type": "public",
                        "scope": [],
                    },
                },
            ),
            (
                "POST",
                "/scope/",
                {
                    "name": f"cn=operators,ou=groups,{base}",
                    "display_name": "operators",
                    "password_required": False,
                    "scheme": {},
                },
            ),
            ("PUT", "/mod/user/database/disable", None),
        ]
        for method, path, body in steps:
            response = admin.request(method, path, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"Glewlwyd {method} {path}: {response.status_code} {response.text[:500]}")
    return public_key
