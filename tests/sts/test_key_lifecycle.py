"""Key lifecycle: pre-published rotation, the schedule, publication bounded by policy, the
lazily made ID-token ring, and the signer's size cap."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from agent_client.trust_store import TrustStore
from realms.tokens import ACCESS_TOKEN, JOB_TOKEN, verify
from realms.tokens.errors import TokenUnknownKey
from sts.config import StsConfig
from sts.keys import KeyStore
from sts.keys.models import SigningKey
from sts.keys.store import TokenTooLarge
from sts.services import Services, build_services
from tests.clocks import ManualClock
from tests.jobs.conftest import build_world
from tests.sts.conftest import make_config

pytestmark = pytest.mark.db
PREPUBLISH = 7200  # the default key_prepublish_seconds


def _claims(services: Services, now: float, ttl: int = 300, realm: str = "jobmgr") -> dict[str, Any]:
    issued = int(now)
    return {
        "iss": services.config.issuer(realm),
        "sub": f"user:{realm}/uid=john",
        "aud": services.config.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": f"j{time.monotonic_ns()}",
        "realm": realm,
        "groups": [],
    }


def _agent_store(client: FlaskClient, services: Services, clock: ManualClock, refetch: bool) -> TrustStore:
    """An agent's trust store fetching over HTTP from ``client``, honouring Cache-Control."""

    def fetch(realm: str) -> tuple[dict[str, Any], int | None]:
        response = client.get(f"/realms/{realm}/jwks")
        max_age = int(response.headers["Cache-Control"].rpartition("max-age=")[2])
        return response.get_json(), max_age

    return TrustStore(
        realms=frozenset({"jobmgr"}),
        issuer_of=services.config.issuer,
        cache_dir=None,
        fetch=fetch,
        # Why: with refetching off, only pre-publication can make a new kid known.
        refetch_interval=10**9 if not refetch else 30,
        max_age=10**9,
        clock=clock,
    )


@pytest.fixture
def clocked(services: Services) -> ManualClock:
    clock = ManualClock(time.time())
    services.keys.clock = clock
    services.keys.check_interval = 0
    return clock


def test_a_new_key_is_published_before_it_signs(services: Services, client: FlaskClient, clocked: ManualClock) -> None:
    old = services.keys.realm_keys("jobmgr").active.kid  # type: ignore[union-attr]
    new = services.keys.rotate("jobmgr")
    states = {k["kid"]: k["state"] for k in services.keys.describe("jobmgr")}
    assert states[new] == "next" and states[old] == "active"
    response = client.get("/realms/jobmgr/jwks")
    assert new in {k["kid"] for k in response.get_json()["keys"]}
    assert response.headers["Cache-Control"] == f"public, max-age={PREPUBLISH // 2}"
    assert (
        verify(
            services.keys.sign("jobmgr", _claims(services, clocked.now), "at+jwt"),
            ACCESS_TOKEN,
            services.keys.trust_resolver(),
            audience=services.config.audience,
            now=clocked.now,
        ).kid
        == old
    )
    assert services.keys.rotate("jobmgr") == new  # already scheduled: one successor
    clocked.now += PREPUBLISH
    token = services.keys.sign("jobmgr", _claims(services, clocked.now), "at+jwt")
    assert (
        verify(
            token, ACCESS_TOKEN, services.keys.trust_resolver(), audience=services.config.audience, now=clocked.now
        ).kid
        == new
    )
    assert services.keys.settle("jobmgr") == {new: "active", old: "retiring"}
    with services.db.session() as session:
        assert session.get(SigningKey, old).retiring_since == int(clocked.now - PREPUBLISH + PREPUBLISH)  # type: ignore[union-attr]


def test_an_agent_that_fetched_before_the_key_signs_accepts_its_tokens(
    services: Services, client: FlaskClient, clocked: ManualClock
) -> None:
    services.keys.rotate("jobmgr")  # scheduled
    clocked.now += 60
    agent = _agent_store(client, services, clocked, refetch=False)
    agent.trust_for_realm("jobmgr")  # the agent's only fetch: after the schedule, before the new key signs
    clocked.now += PREPUBLISH
    for _ in range(3):
        token = services.keys.sign("jobmgr", _claims(services, clocked.now), "at+jwt")
        verify(token, ACCESS_TOKEN, agent, audience=services.config.audience, now=clocked.now)
        clocked.now += 600
    # The defence: the same agent against an immediate rotation does not know the key.
    services.keys.rotate("jobmgr", immediate=True)
    token = services.keys.sign("jobmgr", _claims(services, clocked.now), "at+jwt")
    with pytest.raises(TokenUnknownKey):
        verify(token, ACCESS_TOKEN, agent, audience=services.config.audience, now=clocked.now)


def test_a_cache_filled_before_the_schedule_expires_before_the_key_signs(
    services: Services, client: FlaskClient, clocked: ManualClock
) -> None:
    agent = _agent_store(client, services, clocked, refetch=False)
    agent.trust_for_realm("jobmgr")  # cached before the rotation was scheduled
    clocked.now += 1
    services.keys.rotate("jobmgr")
    clocked.now += PREPUBLISH  # the agent refreshed when its copy's max-age ran out
    token = services.keys.sign("jobmgr", _claims(services, clocked.now), "at+jwt")
    verify(token, ACCESS_TOKEN, agent, audience=services.config.audience, now=clocked.now)


def test_a_long_queued_job_token_verifies_after_rotations(tmp_path: Path, database_url: str) -> None:
    world = build_world(tmp_path, database_url)
    clock = ManualClock(time.time())
    keys = world.services.keys
    keys.clock, keys.check_interval = clock, 0
    world.submit(deadline=int(clock.now) + 6 * 86400)
    job = world.lease()
    assert job is not None
    token = job["job_token"]
    keys.rotate("jobmgr", immediate=True)
    clock.now += 3 * 86400
    keys.rotate("jobmgr", immediate=True)
    clock.now += 3 * 86400 - 600
    keys.maintain()
    assert verify(token, JOB_TOKEN, keys.trust_resolver(), audience="node1", now=clock.now).claims["job_id"]
    clock.now += 8 * 86400
    keys.maintain()
    assert len(keys.published("jobmgr")) == 1
    world.services.close()


def test_concurrent_scheduled_rotations_make_one_key(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url)
    policy = replace(config.realms["jobmgr"].token, key_rotation_days=1)
    config = replace(config, realms={**config.realms, "jobmgr": replace(config.realms["jobmgr"], token=policy)})
    processes = [build_services(config) for _ in range(3)]
    clock = ManualClock(time.time())
    clock.now += 86400
    stores = [KeyStore(p.db, p.master_key, config, clock=clock, check_interval=0) for p in processes]
    try:
        made: list[list[str]] = []
        start = threading.Barrier(len(stores))

        def run(store: KeyStore) -> None:
            start.wait(timeout=60)
            made.append(store.rotate_due())

        threads = [threading.Thread(target=run, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert sorted(len(m) for m in made) == [0, 0, 1]
        with processes[0].db.session() as session:
            assert len(list(session.scalars(select(SigningKey).where(SigningKey.state == "next")))) == 1
        assert stores[0].rotate_due() == []  # the successor is pending: not due again
        assert [k.algorithm for k in stores[0].published("cellB")] == ["ES256"]  # no schedule there
    finally:
        for p in processes:
            p.close()


def test_the_id_token_ring_is_made_on_first_use(sts_config: StsConfig) -> None:
    services = build_services(sts_config)
    try:
        with services.db.session() as session:
            rings = set(session.scalars(select(SigningKey.realm)))
        assert rings == {"jobmgr", "cellB"}  # no RSA key generated at start
        keys = services.keys.jwks("jobmgr")["keys"]
        assert sorted(k["alg"] for k in keys) == ["ES256", "RS256"]
    finally:
        services.close()


def test_a_token_larger_than_the_verifier_accepts_is_refused_at_the_signer(services: Services) -> None:
    claims = {**_claims(services, time.time()), "groups": [f"group:jobmgr/cn=g{i:05}" for i in range(2000)]}
    with pytest.raises(TokenTooLarge) as refused:
        services.keys.sign("jobmgr", claims, "at+jwt")
    assert refused.value.code == "token.too_large" and "16384" in refused.value.message


def test_a_scheduled_key_of_an_abandoned_algorithm_never_signs(tmp_path: Path, database_url: str) -> None:
    one = build_services(make_config(tmp_path, database_url))
    pending = one.keys.rotate("jobmgr")  # an ES256 key, scheduled
    one.close()
    two = build_services(make_config(tmp_path, database_url, algorithms={"jobmgr": "EdDSA"}))
    try:
        clock = ManualClock(time.time())
        clock.now += 2 * PREPUBLISH
        two.keys.clock, two.keys.check_interval = clock, 0
        assert two.keys.realm_keys("jobmgr").active.algorithm == "EdDSA"  # type: ignore[union-attr]
        assert pending not in {k.kid for k in two.keys.published("jobmgr")}
    finally:
        two.close()
