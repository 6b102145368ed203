"""The remote-job fields of the wire contract's spec: parsed by both sides, covered by the digest."""

from __future__ import annotations

import pytest

from realms.wire.digest import job_digest
from realms.wire.errors import JobInvalidSpec
from realms.wire.spec import parse_spec

BASE = {"argv": ["/bin/true"]}


def test_a_local_spec_has_no_remote_members() -> None:
    # Why: the digest of a local job must not change because these optional fields exist.
    assert set(parse_spec(BASE).as_document()) == {"argv", "env", "cwd", "timeout", "authgroup"}


def test_remote_fields_are_parsed_and_covered_by_the_digest() -> None:
    spec = parse_spec({**BASE, "remote_host": "web1", "credential": "web1-deploy", "sudo_user": "liberty"})
    document = spec.as_document()
    assert (document["remote_host"], document["credential"], document["sudo_user"]) == (
        "web1",
        "web1-deploy",
        "liberty",
    )
    other = parse_spec({**BASE, "remote_host": "web2", "credential": "web1-deploy", "sudo_user": "liberty"})
    assert job_digest("j", "n", "run", document) != job_digest("j", "n", "run", other.as_document())


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"sudo_user": "liberty"}, "spec.sudo_user"),  # sudo only after an SSH login
        ({"remote_host": "-oProxyCommand=x"}, "spec.remote_host"),
        ({"remote_host": "web1", "credential": "../k"}, "spec.credential"),
        ({"remote_host": "web1", "sudo_user": "Root"}, "spec.sudo_user"),
        ({"remote_host": 5}, "spec.remote_host"),
    ],
)
def test_bad_remote_fields_are_refused(extra: dict[str, object], field: str) -> None:
    with pytest.raises(JobInvalidSpec) as raised:
        parse_spec({**BASE, **extra})
    assert raised.value.data["field"] == field
