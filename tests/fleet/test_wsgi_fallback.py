"""The wait route on a plain WSGI server (``sts.wsgi``, the Flask test client): the same answers,
waiting on a thread (the ASGI entry answers this path itself and never reaches this code)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from sts.app import create_app
from tests.fleet.fleet import WAIT, config_for
from tests.production.servers import FlaskActor, bearer

pytestmark = [pytest.mark.db]


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    application = create_app(config_for(tmp_path, database_url))
    yield application
    application.extensions["jobsts"].close()


def test_the_wsgi_wait_answers_like_the_async_one(app: Flask) -> None:
    client = app.test_client()
    actor = FlaskActor(client)
    admin = actor.token("admin")
    agent = actor.agent_token("n1", actor.register_node(admin, "n1"))
    quiet = client.get(WAIT, query_string={"timeout": 1}, headers=bearer(agent))
    assert quiet.status_code == 200 and quiet.get_json() == {"work": False}
    assert quiet.headers["Cache-Control"] == "no-store"
    actor.submit(admin, "n1")
    woken = client.get(WAIT, query_string={"timeout": 60}, headers=bearer(agent))
    assert woken.get_json() == {"work": True}
    refused = client.get(WAIT, headers=bearer(admin))
    assert refused.status_code == 401
    bad = client.get(WAIT, query_string={"timeout": 0}, headers=bearer(agent))
    assert bad.status_code == 400 and bad.get_json()["code"] == "job.invalid_spec"
