"""A remote-host password given at submit: sealed to the node's key, delivered only in the lease,
never in the clear in the database, a log or a response, and dropped when the job ends."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import MetaData, inspect, select, text, update

from realms.sealing import OpeningKey, SealedInvalid, open_sealed
from realms.tokens.keys import public_jwk
from sts.nodes.models import Node
from tests.jobs.conftest import World
from tests.jobs.test_dispatch import result

pytestmark = pytest.mark.db
REMOTE_SPEC = {"argv": ["/bin/true"], "remote_host": "web1"}


def _node_key(world: World, node_id: str, key: OpeningKey, algorithm: str) -> None:
    with world.services.db.session() as session:
        node = session.get(Node, node_id)
        assert node is not None
        node.public_jwk = public_jwk(key.public_key(), algorithm)


def _everything_stored(world: World) -> str:
    """Every value of every row of every table, as one text."""
    chunks: list[str] = []
    with world.services.db.session() as session:
        connection = session.connection()
        metadata = MetaData()
        metadata.reflect(connection, only=inspect(connection).get_table_names())
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                chunks.extend(value.decode("latin-1") if isinstance(value, bytes) else str(value) for value in row)
    return "\n".join(chunks)


def _sealed_column(world: World, job_id: str) -> Any:
    with world.services.db.session() as session:
        return (
            session.connection()
            .execute(text("SELECT sealed_credentials FROM sts_jobs WHERE id = :id"), {"id": job_id})
            .scalar_one()
        )


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [(ec.generate_private_key(ec.SECP256R1()), "ES256"), (ed25519.Ed25519PrivateKey.generate(), "EdDSA")],
    ids=["ES256", "EdDSA"],
)
def test_password_canary(world: World, caplog: pytest.LogCaptureFixture, key: OpeningKey, algorithm: str) -> None:
    caplog.set_level(logging.DEBUG)
    _node_key(world, "node1", key, algorithm)
    canary = f"canary-{secrets.token_hex(12)}"
    body = {"user": "deploy", "password": canary}
    job = world.submit(spec=REMOTE_SPEC, remote_credentials=body, headers={"Idempotency-Key": "k1"})
    assert canary not in repr(job)
    stored = _everything_stored(world)
    assert canary not in stored and canary.encode().hex() not in stored
    sealed = _sealed_column(world, job["id"])
    assert isinstance(sealed, str) and sealed.startswith("v1.")

    shown = world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("john")).get_data(as_text=True)
    assert canary not in shown and sealed not in shown  # the sealed copy goes to the agent only
    leased = world.lease()
    assert leased is not None and leased["sealed_credentials"] == sealed
    assert leased["job"]["spec"]["remote_host"] == "web1"
    # Only the node key opens it, and only for this job.
    assert open_sealed(key, sealed, job["id"].encode()) == f'{{"user": "deploy", "password": "{canary}"}}'.encode()
    with pytest.raises(SealedInvalid):
        open_sealed(key, sealed, b"another-job")

    assert world.agent_post(f"jobs/{job['id']}/start").status_code == 200
    assert world.agent_post(f"jobs/{job['id']}/result", result(account="deploy@web1")).status_code == 200
    # Why: the sealed copy is dropped when the job ends.
    assert _sealed_column(world, job["id"]) is None
    assert canary not in caplog.text and sealed not in caplog.text


def test_a_cancelled_job_drops_its_sealed_copy(world: World) -> None:
    _node_key(world, "node1", ec.generate_private_key(ec.SECP256R1()), "ES256")
    job = world.submit(spec=REMOTE_SPEC, remote_credentials={"user": "deploy", "password": "pw"})
    assert _sealed_column(world, job["id"]) is not None
    response = world.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=world.as_user("john"))
    assert response.status_code == 200, response.get_json()
    assert _sealed_column(world, job["id"]) is None


def test_idempotency_covers_the_user_not_the_password(world: World) -> None:
    _node_key(world, "node1", ec.generate_private_key(ec.SECP256R1()), "ES256")
    first = world.submit(
        spec=REMOTE_SPEC, remote_credentials={"user": "deploy", "password": "a"}, headers={"Idempotency-Key": "k"}
    )
    replay = world.submit(
        spec=REMOTE_SPEC,
        remote_credentials={"user": "deploy", "password": "b"},
        headers={"Idempotency-Key": "k"},
        expect=200,
    )
    assert replay["id"] == first["id"]
    conflict = world.submit(
        spec=REMOTE_SPEC,
        remote_credentials={"user": "other", "password": "a"},
        headers={"Idempotency-Key": "k"},
        expect=409,
    )
    assert conflict["code"] == "job.idempotency_conflict"


@pytest.mark.parametrize(
    ("spec", "login", "field"),
    [
        ({"argv": ["/bin/true"]}, {"user": "deploy", "password": "x"}, "remote_credentials"),
        ({**REMOTE_SPEC, "credential": "k"}, {"user": "deploy", "password": "x"}, "remote_credentials"),
        (REMOTE_SPEC, {"user": "deploy"}, "remote_credentials"),
        (REMOTE_SPEC, {"user": "-oProxyCommand=x", "password": "x"}, "remote_credentials.user"),
        (REMOTE_SPEC, {"user": "deploy", "password": ""}, "remote_credentials.password"),
    ],
)
def test_bad_remote_credentials_are_refused(
    world: World, spec: dict[str, Any], login: dict[str, Any], field: str
) -> None:
    refused = world.submit(spec=spec, remote_credentials=login, expect=400)
    assert refused["code"] == "job.invalid_spec" and str(refused["detail"]).startswith(f"{field}:")


def test_a_node_without_a_usable_key_refuses(world: World) -> None:
    with world.services.db.session() as session:
        session.execute(update(Node).where(Node.id == "node1").values(public_jwk={}))
    refused = world.submit(spec=REMOTE_SPEC, remote_credentials={"user": "deploy", "password": "pw"}, expect=409)
    assert refused["code"] == "job.node_key_unsealable"
