"""Administrators working at the same time against the STS under gunicorn (two worker
processes). On SQLite, a read-then-write transaction that began DEFERRED cannot upgrade to a
write lock once another process committed (WAL's SQLITE_BUSY_SNAPSHOT, which the busy timeout
does not wait out), so such endpoints must take the write lock at BEGIN. Found by running the
e2e topologies' node setup in parallel."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from realms.tokens.keys import public_jwk
from tests.e2e.harness import StsServer

pytestmark = [pytest.mark.slapd, pytest.mark.db]


def test_concurrent_node_registrations_all_succeed(sts: StsServer, admin_token: Callable[[], str]) -> None:
    token = admin_token()
    prefix = f"cc{uuid.uuid4().hex[:6]}"

    def register(index: int) -> int:
        key = ec.generate_private_key(ec.SECP256R1())
        body = {"id": f"{prefix}-{index}", "realm": "jobmgr", "public_jwk": public_jwk(key.public_key(), "ES256")}
        with sts.http() as http:
            return http.post("/api/v1/nodes", json=body, headers={"Authorization": f"Bearer {token}"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = Counter(pool.map(register, range(24)))
    assert statuses == Counter({201: 24})
    with sts.http() as http:
        listed = http.get("/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}).json()["nodes"]
    assert sum(1 for node in listed if node["id"].startswith(prefix)) == 24
