"""``jobsts submit --remote-user``: the remote host's password reaches the submit body from a file
or standard input, never from the command line. The STS side (sealing to the node key, dropping
the sealed copy) is tested with the STS; here only what the CLI sends is captured."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent_client.api import jobs as jobs_api
from agent_client.commands import submitter

PASSWORD = "remote-canary-51e0"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def no_sts(url: str | None = None) -> Iterator[None]:
        yield None

    def capture(api: None, body: dict[str, Any], key: str) -> dict[str, Any]:
        bodies.append(body)
        return {"id": "j1", "state": "queued", "node": body["node"], "type": body["type"], "submitter": "me"}

    monkeypatch.setattr(submitter, "user_api", no_sts)
    monkeypatch.setattr(jobs_api, "submit", capture)
    return bodies


BASE = ["--node", "gw1", "--type", "run", "--remote-host", "web1", "--remote-user", "deploy"]


def test_the_password_comes_from_stdin(sent: list[dict[str, Any]]) -> None:
    done = CliRunner().invoke(submitter.submit, [*BASE, "--", "/usr/bin/id"], input=f"{PASSWORD}\n")
    assert done.exit_code == 0, done.output
    [body] = sent
    assert body["spec"]["remote_host"] == "web1" and "credential" not in body["spec"]
    assert body["remote_credentials"] == {"user": "deploy", "password": PASSWORD}
    assert PASSWORD not in done.output


def test_the_password_comes_from_a_file(sent: list[dict[str, Any]], tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(f"{PASSWORD}\nignored\n")
    args = [*BASE, "--remote-password-file", str(secret), "--sudo-user", "liberty", "--", "/usr/bin/id"]
    done = CliRunner().invoke(submitter.submit, args)
    assert done.exit_code == 0, done.output
    [body] = sent
    assert body["remote_credentials"]["password"] == PASSWORD and body["spec"]["sudo_user"] == "liberty"


def test_no_option_takes_the_password_itself() -> None:
    # Why: a secret on a command line is visible to every local user (ps, /proc/PID/cmdline).
    takes = [param.name for param in submitter.submit.params if param.name and "password" in param.name]
    assert takes == ["remote_password_file"]


def test_two_readers_of_stdin_are_refused(sent: list[dict[str, Any]]) -> None:
    args = [*BASE, "--credentials-from-prompt", "--credentials-username", "john", "--", "/usr/bin/id"]
    done = CliRunner().invoke(submitter.submit, args, input="realm-password\n")
    assert done.exit_code == 2 and "--remote-password-file" in done.output and sent == []


def test_a_credential_key_goes_in_the_spec(sent: list[dict[str, Any]]) -> None:
    args = ["--node", "gw1", "--type", "run", "--credential", "sudo-web", "--", "/usr/bin/id"]
    assert CliRunner().invoke(submitter.submit, args).exit_code == 0
    assert sent[0]["spec"]["credential"] == "sudo-web" and "remote_credentials" not in sent[0]
