"""Worker roles of the production server (``sts.wait_listener``): which listener each worker
accepts on, how roles survive crashes and reloads, and the gunicorn settings that carry them."""

from __future__ import annotations

import importlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from sts import gunicorn_conf
from sts.asgi_worker import Worker
from sts.commands.serve import serve
from sts.wait_listener import (
    API_ROLE,
    DEFAULT_WAIT_NICE,
    WAIT_BIND_ENV,
    WAIT_NICE_ENV,
    WAIT_ROLE,
    WAIT_WORKERS_ENV,
    listeners_for,
    next_role,
    on_wait_listener,
    wait_niceness,
    wait_port,
    wait_workers,
)
from tests.loopback import listening_socket, port_of


@dataclass
class Spawned:
    age: int
    role: str


class Arbiter:
    """gunicorn's arbiter as the roles see it: spawn the youngest, trim the oldest above target."""

    def __init__(self, num_workers: int, wanted: int) -> None:
        self.num_workers, self.wanted, self.age = num_workers, wanted, 0
        self.workers: list[Spawned] = []

    def spawn(self) -> None:
        self.age += 1
        self.workers.append(Spawned(self.age, next_role(self.workers, self.num_workers, self.wanted)))

    def fill(self) -> None:
        while len(self.workers) < self.num_workers:
            self.spawn()

    def trim(self) -> None:
        self.workers = sorted(self.workers, key=lambda worker: worker.age)[-self.num_workers :]

    def roles(self) -> list[str]:
        return sorted(worker.role for worker in self.workers)


def test_a_start_gives_each_role_its_count() -> None:
    arbiter = Arbiter(num_workers=3, wanted=1)
    arbiter.fill()
    assert arbiter.roles() == sorted([API_ROLE, API_ROLE, WAIT_ROLE])
    two = Arbiter(num_workers=4, wanted=2)
    two.fill()
    assert two.roles() == sorted([API_ROLE, API_ROLE, WAIT_ROLE, WAIT_ROLE])


@pytest.mark.parametrize("dies", [0, 1, 2])
def test_a_crashed_worker_is_replaced_by_its_own_role(dies: int) -> None:
    arbiter = Arbiter(num_workers=3, wanted=1)
    arbiter.fill()
    lost = arbiter.workers.pop(dies)
    arbiter.fill()
    assert arbiter.roles() == sorted([API_ROLE, API_ROLE, WAIT_ROLE])
    assert arbiter.workers[-1].role == lost.role


def test_a_reload_keeps_the_roles() -> None:
    # gunicorn's HUP: a whole new set is spawned, then the oldest are trimmed to the target.
    arbiter = Arbiter(num_workers=3, wanted=1)
    arbiter.fill()
    for _ in range(arbiter.num_workers):
        arbiter.spawn()
    arbiter.trim()
    assert arbiter.roles() == sorted([API_ROLE, API_ROLE, WAIT_ROLE])
    assert min(worker.age for worker in arbiter.workers) == 4  # all new


def test_without_a_wait_listener_every_worker_serves_the_api() -> None:
    arbiter = Arbiter(num_workers=2, wanted=0)
    arbiter.fill()
    assert arbiter.roles() == [API_ROLE, API_ROLE]


@pytest.fixture
def two_listeners() -> Iterator[tuple[socket.socket, socket.socket]]:
    api, wait = listening_socket(), listening_socket()
    yield api, wait
    api.close()
    wait.close()


def test_each_role_keeps_its_listeners(two_listeners: tuple[socket.socket, socket.socket]) -> None:
    api, wait = two_listeners
    port = port_of(wait)
    assert listeners_for(WAIT_ROLE, [api, wait], port) == [wait]
    assert listeners_for(API_ROLE, [api, wait], port) == [api]
    assert listeners_for(API_ROLE, [api, wait], None) == [api, wait]
    with pytest.raises(RuntimeError, match="no listener for the agent-wait workers"):
        listeners_for(WAIT_ROLE, [api], port)


def test_the_wait_listener_is_known_by_its_socket_port() -> None:
    assert on_wait_listener({"server": ("127.0.0.1", 8081)}, 8081)
    assert not on_wait_listener({"server": ("127.0.0.1", 8080)}, 8081)
    assert not on_wait_listener({"server": None}, 8081)
    assert not on_wait_listener({"server": ("127.0.0.1", 8081)}, None)


def test_wait_settings_come_from_the_environment() -> None:
    assert wait_port({}) is None and wait_workers({}) == 0
    assert wait_port({WAIT_BIND_ENV: "[::1]:8081"}) == 8081
    assert wait_workers({WAIT_BIND_ENV: "0.0.0.0:8081"}) == 1
    assert wait_workers({WAIT_BIND_ENV: "0.0.0.0:8081", WAIT_WORKERS_ENV: "3"}) == 3
    for bad in ("8081", "host:", "host:99999", "host:x"):
        with pytest.raises(ValueError, match=WAIT_BIND_ENV):
            wait_port({WAIT_BIND_ENV: bad})
    assert wait_niceness({}) == DEFAULT_WAIT_NICE
    assert wait_niceness({WAIT_NICE_ENV: "0"}) == 0 and wait_niceness({WAIT_NICE_ENV: "19"}) == 19
    for bad in ("-5", "20", "x", " 3"):
        with pytest.raises(ValueError, match=WAIT_NICE_ENV):
            wait_niceness({WAIT_NICE_ENV: bad})


def test_gunicorn_settings_add_the_wait_listener_and_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSTS_GUNICORN_WORKERS", "2")
    monkeypatch.setenv(WAIT_BIND_ENV, "127.0.0.1:8081")
    try:
        settings = importlib.reload(gunicorn_conf).settings()
        assert settings["bind"] == ["127.0.0.1:8080", "127.0.0.1:8081"] and settings["workers"] == 3
        arbiter = type("Arbiter", (), {"WORKERS": {}, "num_workers": 3})()
        worker = type("Spawning", (), {"age": 1})()
        settings["pre_fork"](arbiter, worker)
        assert worker.role == WAIT_ROLE
    finally:
        monkeypatch.undo()
        importlib.reload(gunicorn_conf)
    assert Worker.role == API_ROLE  # a worker no hook named serves the API


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--wait-port", "8081"], "--wait-port needs --production"),
        (["--production", "--port", "8081", "--wait-port", "8081"], "--wait-port must differ from --port"),
    ],
)
def test_serve_refuses_a_wait_port_it_cannot_use(tmp_path: Path, extra: list[str], message: str) -> None:
    config = tmp_path / "sts.toml"
    config.write_text("")
    done = CliRunner().invoke(serve, ["--config", str(config), *extra])
    assert done.exit_code == 2 and message in done.output, done.output


def test_serve_refuses_a_bad_wait_niceness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sts.toml"
    config.write_text("")
    monkeypatch.setenv(WAIT_NICE_ENV, "-5")
    done = CliRunner().invoke(serve, ["--config", str(config), "--production", "--wait-port", "8081"])
    assert done.exit_code == 2 and f"{WAIT_NICE_ENV}='-5': expected 0 to 19" in done.output, done.output
