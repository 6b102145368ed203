"""Which client address the production server believes: ``sts.trusted_proxies`` and nothing else.

uvicorn believes ``X-Forwarded-For`` from any peer in gunicorn's ``forwarded_allow_ips`` (127.0.0.1
unless ``FORWARDED_ALLOW_IPS`` says more) unless told not to; then a local client picks its own
address for the per-address login throttle and the audit log. Each test reads the address the
STS audited for a failed login that claims to come from elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ldap_harness import ldif_realm_table
from tests.production.servers import StsProcess, write_sts_config

pytestmark = [pytest.mark.db]
FORGED = "203.0.113.9"


def _audited_login_client(config: Path, workdir: Path, env: dict[str, str]) -> str:
    server = StsProcess(config, workdir, 1, env=env)
    try:
        server.wait_ready()
        reply = server.login("john", "not-the-password")
        assert reply.status == 400, reply.body
        # The same request again with a forged address: only this one is read below.
        answer = server.client.post(
            "/realms/jobmgr/token",
            data={"grant_type": "password", "username": "carol", "password": "not-the-password"},
            headers={"X-Forwarded-For": FORGED, "X-Forwarded-Proto": "https"},
        )
        assert answer.status_code == 400, answer.text
    finally:
        server.stop()
    logins = [
        entry
        for entry in (json.loads(line) for line in server.stderr().splitlines() if line.startswith("{"))
        if entry.get("event") == "login" and entry.get("outcome") == "failed"
    ]
    assert len(logins) == 2, server.stderr()[-2000:]
    return str(logins[1]["client"])


@pytest.mark.parametrize("allowed", [None, "*"], ids=["gunicorn-default", "forwarded-allow-ips-star"])
def test_a_loopback_client_cannot_choose_its_address_without_a_trusted_proxy(
    tmp_path: Path, database_url: str, allowed: str | None
) -> None:
    config = write_sts_config(tmp_path, database_url, [ldif_realm_table("jobmgr")])
    env = {} if allowed is None else {"FORWARDED_ALLOW_IPS": allowed}
    assert _audited_login_client(config, tmp_path, env) == "127.0.0.1"


def test_a_trusted_proxy_names_the_client(tmp_path: Path, database_url: str) -> None:
    config = write_sts_config(
        tmp_path, database_url, [ldif_realm_table("jobmgr")], {"trusted_proxies": ["127.0.0.1/32"]}
    )
    assert _audited_login_client(config, tmp_path, {}) == FORGED
