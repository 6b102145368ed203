"""Brute-force protection for password logins, shared through the database."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from sts import create_app
from sts.config import ThrottlePolicy
from sts.http.context import client_address
from sts.oauth.throttle import LoginThrottle
from sts.services import Services
from tests.sts.conftest import make_config

pytestmark = pytest.mark.db
WRONG = {"grant_type": "password", "username": "john", "password": "wrong"}
RIGHT = {"grant_type": "password", "username": "john", "password": "john-password"}


def _post(client: FlaskClient, form: dict[str, str], address: str = "10.0.0.1", **headers: str) -> Any:
    return client.post("/realms/jobmgr/token", data=form, environ_base={"REMOTE_ADDR": address}, headers=headers)


def test_lock_after_failure_factor_and_locked_answer_is_the_wrong_password_answer(
    client: FlaskClient, services: Services
) -> None:
    wrong_answers = [_post(client, WRONG) for _ in range(3)]  # failure_factor = 3 in tests
    registry: Any = services.registries["jobmgr"]
    calls_before = len(registry.calls)
    locked = _post(client, RIGHT)
    assert locked.status_code == wrong_answers[0].status_code == 400
    assert locked.get_data() == wrong_answers[0].get_data()
    assert dict(locked.headers) == dict(wrong_answers[0].headers)
    assert len(registry.calls) == calls_before  # the directory was not asked


def test_case_variants_share_one_counter(client: FlaskClient) -> None:
    for name in ("john", "John", "JOHN"):
        _post(client, {**WRONG, "username": name})
    assert _post(client, RIGHT).status_code == 400


def test_outage_does_not_count(client: FlaskClient, services: Services) -> None:
    registry: Any = services.registries["jobmgr"]
    registry.down = True
    for _ in range(5):
        assert _post(client, WRONG).status_code == 503
    registry.down = False
    assert _post(client, RIGHT).status_code == 200


def test_success_resets_the_user_counter(client: FlaskClient) -> None:
    for _ in range(2):
        _post(client, WRONG)
    assert _post(client, RIGHT).status_code == 200
    for _ in range(2):
        _post(client, WRONG)
    assert _post(client, RIGHT).status_code == 200


def test_wait_grows_and_is_capped() -> None:
    from sts.db import Database

    class Clock:
        now = 1_000_000.0

        def __call__(self) -> float:
            return self.now

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/t.db")
        from sts.db import Base

        Base.metadata.create_all(db.engine)
        clock = Clock()
        throttle = LoginThrottle(
            db,
            ThrottlePolicy(
                failure_factor=3, wait_increment_seconds=60, max_wait_seconds=150, per_address_failure_factor=50
            ),
            clock,
        )
        counters = throttle.counters("jobmgr", "john", "10.0.0.9")
        waits = []
        for _ in range(6):
            throttle.failed(counters)
            waits.append(_locked_for(throttle, counters, clock))
        assert waits == [0, 0, 60, 120, 150, 150]
        clock.now += 43200 + 200  # reset window passes: counting starts over
        throttle.failed(counters)
        assert _locked_for(throttle, counters, clock) == 0
        db.dispose()


def _locked_for(throttle: LoginThrottle, counters: Any, clock: Any) -> int:
    start = clock.now
    seconds = 0
    while throttle.locked(counters):
        seconds += 30
        clock.now = start + seconds
    clock.now = start
    return seconds


def test_per_address_counter(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url)
    config = replace(config, throttle=ThrottlePolicy(failure_factor=30, per_address_failure_factor=4))
    app = create_app(config)
    try:
        client = app.test_client()
        for name in ("a", "b", "c", "d"):
            _post(client, {**WRONG, "username": name}, address="10.9.9.9")
        assert _post(client, RIGHT, address="10.9.9.9").status_code == 400
        assert _post(client, RIGHT, address="10.9.9.8").status_code == 200
    finally:
        app.extensions["jobsts"].close()


def test_forwarded_for_is_only_believed_from_trusted_proxies() -> None:
    import ipaddress

    proxies = (ipaddress.ip_network("10.1.0.0/16"),)
    assert client_address("203.0.113.5", "198.51.100.7", proxies) == "203.0.113.5"
    assert client_address("10.1.2.3", "198.51.100.7", proxies) == "198.51.100.7"
    assert client_address("10.1.2.3", "1.2.3.4, 198.51.100.7, 10.1.9.9", proxies) == "198.51.100.7"
    assert client_address("10.1.2.3", "not-an-ip", proxies) == "10.1.2.3"


def test_spoofed_forwarded_for_does_not_escape_the_address_lock(tmp_path: Path, database_url: str) -> None:
    config = replace(
        make_config(tmp_path, database_url), throttle=ThrottlePolicy(failure_factor=30, per_address_failure_factor=3)
    )
    app = create_app(config)
    try:
        client = app.test_client()
        for i, name in enumerate(("a", "b", "c")):
            _post(client, {**WRONG, "username": name}, address="203.0.113.5", **{"X-Forwarded-For": f"1.1.1.{i}"})
        refused = _post(client, RIGHT, address="203.0.113.5", **{"X-Forwarded-For": "9.9.9.9"})
        assert refused.status_code == 400
    finally:
        app.extensions["jobsts"].close()
