"""Validation of submissions and results: types, sizes, identity fields, defaults."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realms.errors import JobstsError
from realms.wire.documents import parse_job, parse_result
from realms.wire.spec import IDENTITY_FIELDS, LIMITS, parse_spec
from sts.jobs.spec import parse_submission

MAX_ARGV, MAX_ARG_CHARS, MAX_ENV = LIMITS.max_argv, LIMITS.max_arg_chars, LIMITS.max_env
MAX_TAIL_CHARS = LIMITS.max_tail_chars


def body(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"node": "node1", "type": "shell", "spec": {"argv": ["/bin/true"]}}
    document.update(changes)
    return document


def code_of(document: Any) -> str:
    with pytest.raises(JobstsError) as info:
        parse_submission(document)
    return info.value.code


@pytest.mark.parametrize("field", sorted(IDENTITY_FIELDS))
def test_identity_fields_are_refused_at_the_top(field: str) -> None:
    assert code_of(body(**{field: "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"})) == "job.identity_field"


@pytest.mark.parametrize("field", ["owner", "run_as", "account", "groups", "sub", "token", "user", "exp"])
def test_identity_fields_are_refused_inside_the_spec(field: str) -> None:
    assert code_of(body(spec={"argv": ["/bin/true"], field: "root"})) == "job.identity_field"


def test_the_required_identity_fields_are_all_covered() -> None:
    required = {
        "owner",
        "submitter",
        "access_id",
        "sub",
        "groups",
        "exp",
        "iat",
        "run_as",
        "account",
        "user",
        "token",
        "job_token",
        "iss",
        "realm",
    }
    assert required <= IDENTITY_FIELDS


@pytest.mark.parametrize(
    "spec",
    [
        {"argv": []},
        {"argv": "echo hi"},
        {"argv": ["echo", 1]},
        {"argv": ["x"] * (MAX_ARGV + 1)},
        {"argv": ["x" * (MAX_ARG_CHARS + 1)]},
        {"argv": ["echo", "a\x00b"]},
        {"argv": [""]},
        {"argv": ["x"], "env": {f"V{i}": "x" for i in range(MAX_ENV + 1)}},
        {"argv": ["x"], "env": {"1ABC": "x"}},
        {"argv": ["x"], "env": {"A-B": "x"}},
        {"argv": ["x"], "env": {"A B": "x"}},
        {"argv": ["x"], "env": {"A": 1}},
        {"argv": ["x"], "env": ["A=1"]},
        {"argv": ["x"], "cwd": "relative/dir"},
        {"argv": ["x"], "cwd": 5},
        {"argv": ["x"], "timeout": True},
        {"argv": ["x"], "timeout": 0},
        {"argv": ["x"], "timeout": "60"},
        {"argv": ["x"], "authgroup": "bad group"},
        {"argv": ["x"], "shell": True},
        "argv",
    ],
)
def test_bad_specs_are_refused(spec: Any) -> None:
    assert code_of(body(spec=spec)) == "job.invalid_spec"


def test_limits_themselves_are_accepted() -> None:
    spec = {"argv": ["x" * MAX_ARG_CHARS] * 8, "env": {f"V_{i}": "v" for i in range(MAX_ENV)}}
    assert len(parse_submission(body(spec=spec)).spec["env"]) == MAX_ENV
    assert len(parse_spec({"argv": ["x"] * MAX_ARGV}).argv) == MAX_ARGV


@pytest.mark.parametrize(
    "document",
    [
        [],
        "x",
        body(node="bad node"),
        body(type=""),
        body(type=3),
        body(extra=1),
        body(not_before="yesterday"),
        body(deadline="2026-01-01T00:00:00"),
        body(deadline=True),
        body(credentials={"username": "bob"}),
        body(credentials={"username": "bob", "password": ""}),
        body(credentials={"username": "bob", "password": "p", "realm": "cellB"}),
    ],
)
def test_bad_bodies_are_refused(document: Any) -> None:
    assert code_of(document) in ("job.invalid_spec", "job.identity_field")


def test_defaults_are_filled_before_the_digest() -> None:
    submission = parse_submission(body(spec={"argv": ["/bin/echo", "hi"], "env": {"B": "2", "A": "1"}}))
    assert submission.spec == {
        "argv": ["/bin/echo", "hi"],
        "env": {"A": "1", "B": "2"},
        "cwd": None,
        "timeout": 3600,
        "authgroup": None,
    }


def test_times_accept_epoch_and_rfc3339_with_zone() -> None:
    submission = parse_submission(body(not_before=1_800_000_000, deadline="2027-01-15T08:00:00+01:00"))
    assert submission.not_before == 1_800_000_000
    assert submission.deadline == int(datetime(2027, 1, 15, 7, 0, tzinfo=UTC).timestamp())


def test_the_password_is_not_in_the_idempotency_digest_nor_the_repr() -> None:
    one = parse_submission(body(credentials={"username": "bob", "password": "first-secret"}))
    two = parse_submission(body(credentials={"username": "bob", "password": "second-secret"}))
    other_user = parse_submission(body(credentials={"username": "deployer", "password": "first-secret"}))
    assert one.request_digest == two.request_digest != other_user.request_digest
    assert "first-secret" not in repr(one) and "first-secret" not in repr(one.credentials)


def result(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "outcome": "succeeded",
        "exit_code": 0,
        "stdout_tail": "",
        "stderr_tail": "",
        "code": None,
        "reason": None,
        "account": "batch",
        "trace": [],
    }
    document.update(changes)
    return document


@pytest.mark.parametrize(
    "document",
    [
        result(outcome="done"),
        result(outcome="refused"),
        result(exit_code="0"),
        result(exit_code=True),
        result(code="Not A Code"),
        result(stdout_tail=5),
        result(trace=[{"step": "z", "verdict": "pass"}]),
        result(trace=[{"step": "a", "verdict": "maybe"}]),
        result(trace="a"),
        result(reason=5),
        result(account="x" * 300),
        [],
    ],
)
def test_bad_results_are_refused(document: Any) -> None:
    with pytest.raises(JobstsError) as info:
        parse_result(document)
    assert info.value.code == "job.invalid_spec"


def test_output_tails_keep_the_last_64_kib() -> None:
    parsed = parse_result(result(stdout_tail="a" * 10 + "b" * MAX_TAIL_CHARS, stderr_tail="short"))
    assert parsed.stdout_tail == "b" * MAX_TAIL_CHARS
    assert parsed.stderr_tail == "short"


def test_long_free_text_is_clipped_not_refused() -> None:
    parsed = parse_result(
        result(reason="r" * 5000, trace=[{"step": "f", "name": "n" * 200, "verdict": "pass", "detail": "d" * 5000}])
    )
    assert parsed.reason == "r" * 4096
    assert (len(parsed.trace[0].name), len(parsed.trace[0].detail)) == (128, 4096)


def test_a_refusal_carries_its_code_and_trace() -> None:
    parsed = parse_result(
        result(
            outcome="refused",
            exit_code=None,
            code="realm.untrusted",
            trace=[{"step": "a", "name": "realm", "verdict": "fail", "detail": "cellC is not trusted"}],
        )
    )
    assert parsed.code == "realm.untrusted" and parsed.trace[0].verdict == "fail"
    assert parsed.digest() == parse_result(parsed.as_document()).digest()


# --- one contract, both sides -------------------------------------------------------------------


def _agent_code(spec: dict[str, Any]) -> str | None:
    """What the agent says about a leased job with this spec: None when it parses."""
    from agent_client.validation import leased_job

    job = {
        "id": "job-1",
        "node": "node1",
        "type": "shell",
        "spec": spec,
        "submitter": "user:jobmgr/uid=john",
        "realm": "jobmgr",
        "not_before": 0,
        "deadline": 1,
        "attempt": 1,
    }
    try:
        leased_job(job)
    except JobstsError as exc:
        return exc.code
    return None


@pytest.mark.parametrize(
    ("limit", "spec"),
    [
        ("max_argv", {"argv": ["/bin/echo", "a", "b"]}),
        ("max_arg_chars", {"argv": ["abc", "ab"]}),
        ("max_env", {"argv": ["/bin/true"], "env": {"A": "1", "B": "2", "C": "3"}}),
        ("max_env_value_chars", {"argv": ["/bin/true"], "env": {"A": "123"}}),
        ("max_timeout", {"argv": ["/bin/true"], "timeout": 3}),
    ],
)
def test_one_limits_table_drives_the_sts_and_the_agent(
    monkeypatch: pytest.MonkeyPatch, limit: str, spec: dict[str, Any]
) -> None:
    import realms.wire.spec

    normalized = parse_submission(body(spec=spec)).spec
    assert _agent_code(normalized) is None
    monkeypatch.setattr(realms.wire.spec, "LIMITS", replace(LIMITS, **{limit: 2}))
    assert code_of(body(spec=spec)) == "job.invalid_spec"
    assert _agent_code(normalized) == "agent.job_invalid"
    monkeypatch.setattr(realms.wire.spec, "LIMITS", replace(LIMITS, **{limit: 3}))
    assert parse_submission(body(spec=spec)).spec == normalized
    assert _agent_code(normalized) is None


@pytest.mark.parametrize("field", sorted(IDENTITY_FIELDS))
def test_the_agent_refuses_identity_fields_in_a_spec_too(field: str) -> None:
    assert (
        _agent_code({"argv": ["/bin/true"], "env": {}, "cwd": None, "timeout": 10, "authgroup": None, field: "root"})
        == "agent.job_invalid"
    )


_texts = st.text(st.characters(codec="utf-8"), max_size=20)


@given(
    st.fixed_dictionaries(
        {"argv": st.lists(_texts, min_size=1, max_size=4)},
        optional={
            "env": st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), _texts, max_size=3),
            "cwd": st.one_of(st.none(), _texts.map(lambda t: "/" + t)),
            "timeout": st.integers(min_value=-5, max_value=LIMITS.max_timeout + 5),
            "authgroup": st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,5}", fullmatch=True), _texts),
        },
    )
)
@settings(max_examples=300, deadline=None)
def test_whatever_the_sts_accepts_the_agent_reads_back_unchanged(spec: dict[str, Any]) -> None:
    try:
        normalized = parse_submission(body(spec=spec)).spec
    except JobstsError:
        return
    assert _agent_code(normalized) is None
    assert parse_spec(normalized).as_document() == normalized
    job = {
        "id": "job-1",
        "node": "node1",
        "type": "shell",
        "spec": normalized,
        "submitter": "user:jobmgr/uid=john",
        "realm": "jobmgr",
        "not_before": 0,
        "deadline": 1,
        "attempt": 1,
    }
    assert parse_job(job).as_document() == job


_LEASED = {
    "id": "job-1", "node": "node1", "type": "shell", "spec": {"argv": ["/bin/true"]},
    "submitter": "user:jobmgr/uid=john", "realm": "jobmgr", "not_before": 0, "deadline": 1, "attempt": 1,
}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [("submitter", ""), ("submitter", "a\x00b"), ("submitter", "a\ud800"), ("submitter", "x" * 1025),
     ("submitter", None), ("submitter", 7), ("not_before", True), ("not_before", 1.0), ("deadline", "1"),
     ("deadline", None), ("attempt", False), ("attempt", [1])],
)  # fmt: skip
def test_the_leased_jobs_fast_checks_refuse_what_the_full_ones_do(field: str, value: Any) -> None:
    # The parser checks the common case (exact str and int) inline; everything else must still be refused.
    assert parse_job(_LEASED).as_document()["attempt"] == 1
    with pytest.raises(JobstsError) as refused:
        parse_job({**_LEASED, field: value})
    assert refused.value.data["field"] == f"job.{field}"
