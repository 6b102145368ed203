"""The console's fixtures: a real STS (seed realms, roles, nodes) whose ``base_url`` is the
loopback address it is served on, so the console's redirect URI and issuer are real; jobs in
every interesting state made through the real API; and sign-in through the real login page."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from authz_tables.roles import Role
from sts import create_app
from sts.config import load_sts_config
from sts.services import Services
from tests.jobs.conftest import JOHN, World
from tests.loopback import listening_socket, port_of
from tests.sts.conftest import BASE_URL, write_config
from tests.sts.fakes import group_id, user_id

XSS_MARKER = "console-xss-4b1d"
HOSTILE = (
    f'<script>console.log("{XSS_MARKER}");document.title="{XSS_MARKER}"</script>'
    f'<img src=x onerror="console.log(\'{XSS_MARKER}\')"><b id="injected-bold">bold</b>'
)


@dataclass
class Console:
    """A served STS: ``url`` is its base URL (http on loopback), ``world`` drives its API."""

    url: str
    world: World

    @property
    def services(self) -> Services:
        return self.world.services

    def client(self) -> FlaskClient:
        return self.world.app.test_client()


def _serve(tmp_path: Path, database_url: str) -> Iterator[Console]:
    sock = listening_socket()
    base = f"http://127.0.0.1:{port_of(sock)}"
    path = write_config(tmp_path, database_url)
    path.write_text(path.read_text().replace(BASE_URL, base), encoding="utf-8")
    app = create_app(load_sts_config(path, environ={}))
    app.config.update(TESTING=True)
    services: Services = app.extensions["jobsts"]
    world = World(app, app.test_client(), services)
    world.grant(JOHN, Role.OPERATOR)
    world.grant(user_id("jobmgr", "user1"), Role.OPERATOR)
    world.grant(group_id("jobmgr", "monitors"), Role.MONITOR)
    world.add_node("node1", "jobmgr", authgroups=("batch",))
    world.add_node("trusting", "cellB", trusted=("jobmgr",))
    server = make_server("127.0.0.1", 0, app, threaded=True, fd=sock.fileno())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Console(base, world)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        sock.close()
        services.close()


@pytest.fixture
def console(tmp_path: Path, database_url: str) -> Iterator[Console]:
    yield from _serve(tmp_path, database_url)


REFUSAL_TRACE = [
    {"step": "a", "name": "issuer trust", "verdict": "pass", "detail": "realm jobmgr is this node's own"},
    {"step": "b", "name": "token and job binding", "verdict": "pass", "detail": "signature, aud and digest match"},
    {"step": "c", "name": "principals", "verdict": "pass", "detail": "user:jobmgr/john and 2 groups"},
    {"step": "d", "name": "required role", "verdict": "pass", "detail": "type shell needs operator"},
    {"step": "e", "name": "authorization", "verdict": "fail", "detail": "no grant of operator on authgroup:batch"},
    {"step": "f", "name": "account mapping", "verdict": "skip", "detail": "not reached"},
]
SUCCESS_TRACE = [
    *REFUSAL_TRACE[:4],
    {"step": "e", "name": "authorization", "verdict": "pass", "detail": "operator via group:jobmgr/batchers"},
    {"step": "f", "name": "account mapping", "verdict": "pass", "detail": "rule 1: user john -> account batch"},
]


def _result(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "outcome": "succeeded",
        "exit_code": 0,
        "stdout_tail": "hello from node1\n",
        "stderr_tail": "",
        "code": None,
        "reason": None,
        "account": "batch",
        "trace": SUCCESS_TRACE,
    }
    document.update(changes)
    return document


def succeeded_job(world: World, username: str = "john", stdout: str = "hello from node1\n", **submit: Any) -> str:
    job = world.submit(username, **submit)
    assert world.lease() is not None
    assert world.agent_post(f"jobs/{job['id']}/start").status_code == 200
    done = world.agent_post(f"jobs/{job['id']}/result", _result(stdout_tail=stdout))
    assert done.status_code == 200, done.get_json()
    return str(job["id"])


def refused_job(world: World, username: str = "john") -> str:
    job = world.submit(username)
    assert world.lease() is not None
    refusal = _result(
        outcome="refused",
        exit_code=None,
        stdout_tail="",
        code="authz.denied",
        reason="user:jobmgr/john has no role implying operator on authgroup:batch",
        account=None,
        trace=REFUSAL_TRACE,
    )
    done = world.agent_post(f"jobs/{job['id']}/result", refusal)
    assert done.status_code == 200, done.get_json()
    return str(job["id"])


def queued_job(world: World, username: str = "john", **submit: Any) -> str:
    return str(world.submit(username, **submit)["id"])


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[str(values["name"])] = values.get("value") or ""


def hidden_fields(html: str) -> dict[str, str]:
    parser = _Forms()
    parser.feed(html)
    return parser.fields


def _path(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def callback_response(
    console: Console, client: FlaskClient, username: str = "john", realm: str = "jobmgr"
) -> TestResponse:
    """Run the sign-in up to the console's callback, through the realm's real login page."""
    base = console.url
    start = client.post("/console/login", data={"realm": realm, "next": "/console/jobs"}, base_url=base)
    assert start.status_code == 303, start.get_data(as_text=True)
    page = client.get(_path(start.headers["Location"]), base_url=base)
    assert page.status_code == 200, page.get_data(as_text=True)
    fields = hidden_fields(page.get_data(as_text=True))
    fields.update(username=username, password=f"{username}-password")
    answer = client.post(f"/realms/{realm}/authorize", data=fields, base_url=base)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    back = client.get(_path(answer.headers["Location"]), base_url=base)
    assert back.status_code == 303, back.get_data(as_text=True)
    return back


def sign_in(console: Console, client: FlaskClient, username: str = "john", realm: str = "jobmgr") -> TestResponse:
    """Sign in through the console and the realm's real login page; returns the jobs page."""
    back = callback_response(console, client, username, realm)
    jobs = client.get(_path(back.headers["Location"]), base_url=console.url)
    assert jobs.status_code == 200, jobs.get_data(as_text=True)
    return jobs
