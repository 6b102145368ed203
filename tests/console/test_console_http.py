"""The console's defences over HTTP (Flask's test client against the real app): headers, CSRF,
cookie flags, sign-in binding, open redirects, visibility, escaping, sign-out, pagination."""

from __future__ import annotations

import html
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from sts.console.blueprint import CONTENT_SECURITY_POLICY
from sts.console.error_docs import error_docs, plain
from sts.console.models import ConsoleSession
from sts.console.sessions import COOKIE, secure_cookies
from sts.jobs.history import Viewer
from sts.jobs.listing import PAGE_SIZE, ListingFilter, list_page
from sts.jobs.models import Job
from sts.oauth.models import RefreshToken
from tests.console.conftest import (
    HOSTILE,
    Console,
    callback_response,
    hidden_fields,
    queued_job,
    refused_job,
    sign_in,
    succeeded_job,
)

pytestmark = pytest.mark.db  # the PostgreSQL pass runs these too


def _get(console: Console, client: FlaskClient, path: str) -> tuple[int, str, dict[str, str]]:
    response = client.get(path, base_url=console.url)
    return response.status_code, response.get_data(as_text=True), dict(response.headers)


def _state(console: Console, job_id: str) -> str:
    response = console.world.client.get(f"/api/v1/jobs/{job_id}", headers=console.world.as_user("john"))
    return str(response.get_json()["state"])


def test_every_console_page_carries_the_strict_policy(console: Console) -> None:
    job = refused_job(console.world)
    client = console.client()
    _, _, headers = _get(console, client, "/console/login")
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    sign_in(console, client)
    for path in (
        "/console/jobs",
        f"/console/jobs/{job}",
        "/console/nodes",
        "/console/realms",
        "/console/activity",
        "/console/jobs/00000000-0000-0000-0000-000000000000",
    ):
        _, body, headers = _get(console, client, path)
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "'unsafe-inline'" not in policy and "default-src 'self'" in policy
        assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer"
        assert "<script" not in body and " style=" not in body, path  # nothing the policy would block


def test_session_cookie_is_httponly_strict_and_scoped(console: Console) -> None:
    back = callback_response(console, console.client())
    cookies = [h for h in back.headers.getlist("Set-Cookie") if h.startswith(f"{COOKIE}=")]
    assert len(cookies) == 1
    parsed = SimpleCookie()
    parsed.load(cookies[0])
    morsel = parsed[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/console"
    assert len(morsel.value) >= 43  # 256 random bits
    # The tests serve plain http on loopback, the one case without Secure; everything else has it.
    assert not morsel["secure"]
    assert secure_cookies("https://sts.example.org") and secure_cookies("http://sts.example.org")
    assert secure_cookies("http://localhost.evil.example") and secure_cookies("http://127.0.0.1.evil.example")
    assert not secure_cookies("http://127.0.0.1:8080") and not secure_cookies("http://localhost:5000")
    # Nothing secret travels in a URL: the code flow's redirect carries no token, only the code.
    assert "token" not in back.headers["Location"] and "code=" not in back.headers["Location"]
    stored = console.services.db.session
    with stored() as session:
        row = session.scalars(select(ConsoleSession)).one()
        assert morsel.value not in row.id_hash and b"ey" not in row.access_token[:4]


def test_state_changing_requests_need_the_sessions_csrf_token(console: Console) -> None:
    job = queued_job(console.world)
    client = console.client()
    sign_in(console, client)
    page = client.get(f"/console/jobs/{job}", base_url=console.url).get_data(as_text=True)
    token = hidden_fields(page)["csrf_token"]
    other = console.client()
    sign_in(console, other)
    foreign = hidden_fields(other.get("/console/jobs", base_url=console.url).get_data(as_text=True))["csrf_token"]
    assert foreign != token
    for data in (
        {},
        {"csrf_token": ""},
        {"csrf_token": foreign},
        {"csrf_token": ("B" if token[0] == "A" else "A") + token[1:]},
    ):
        refused = client.post(f"/console/jobs/{job}/cancel", data=data, base_url=console.url)
        assert refused.status_code == 403 and "console.csrf" in refused.get_data(as_text=True)
        assert _state(console, job) == "queued"
    logout = client.post("/console/logout", data={}, base_url=console.url)
    assert logout.status_code == 403 and "console.csrf" in logout.get_data(as_text=True)
    assert client.get("/console/jobs", base_url=console.url).status_code == 200  # still signed in
    done = client.post(f"/console/jobs/{job}/cancel", data={"csrf_token": token}, base_url=console.url)
    assert done.status_code == 303 and _state(console, job) == "cancelled"


def test_another_users_job_is_not_found_not_forbidden(console: Console) -> None:
    johns = queued_job(console.world, "john")
    client = console.client()
    sign_in(console, client, "user2")  # no role on the job manager: sees only its own jobs
    status, body, _ = _get(console, client, f"/console/jobs/{johns}")
    assert status == 404 and "job.not_found" in body
    status, body, _ = _get(console, client, "/console/jobs")
    assert johns[:8] not in body and "The jobs you submitted" in body
    token = hidden_fields(body)["csrf_token"]
    cancel = client.post(f"/console/jobs/{johns}/cancel", data={"csrf_token": token}, base_url=console.url)
    assert cancel.status_code == 404 and _state(console, johns) == "queued"
    monitor = console.client()
    sign_in(console, monitor, "carol")  # monitor through group:jobmgr/monitors
    status, body, _ = _get(console, monitor, f"/console/jobs/{johns}")
    assert status == 200 and 'id="cancel"' not in body  # seeing is not owning


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "/console/../realms", "javascript:x"]
)
def test_sign_in_never_redirects_off_the_console(console: Console, target: str) -> None:
    client = console.client()
    page = client.get("/console/login", query_string={"next": target}, base_url=console.url).get_data(as_text=True)
    assert hidden_fields(page)["next"] in ("/console/jobs", target) and hidden_fields(page)["next"].startswith(
        "/console/"
    )
    start = client.post("/console/login", data={"realm": "jobmgr", "next": target}, base_url=console.url)
    location = urlsplit(start.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == console.url  # the realm's own login page
    assert parse_qs(location.query)["redirect_uri"] == [f"{console.url}/console/callback"]


def test_a_callback_that_this_browser_did_not_start_is_refused(console: Console) -> None:
    client = console.client()
    fresh = client.get("/console/callback?code=x&state=y", base_url=console.url)
    assert fresh.status_code == 400 and "Location" not in fresh.headers
    assert "console.login_invalid" in fresh.get_data(as_text=True)
    start = client.post("/console/login", data={"realm": "jobmgr"}, base_url=console.url)
    query = parse_qs(urlsplit(start.headers["Location"]).query)
    state, issuer = query["state"][0], f"{console.url}/realms/jobmgr"
    for params in (
        {"code": "x", "state": state + "x", "iss": issuer},
        {"code": "x", "state": state, "iss": f"{console.url}/realms/cellB"},
        {"code": "x", "state": state},
    ):
        refused = client.get("/console/callback", query_string=params, base_url=console.url)
        assert refused.status_code == 400 and "console.login_invalid" in refused.get_data(as_text=True)
    wrong_code = client.get("/console/callback", query_string={"code": "x", "state": state, "iss": issuer})
    assert wrong_code.status_code == 400 and COOKIE not in wrong_code.headers.get("Set-Cookie", "")


def test_signed_out_pages_send_to_sign_in_and_come_back(console: Console) -> None:
    client = console.client()
    response = client.get("/console/nodes", base_url=console.url)
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/console/login" and parse_qs(location.query)["next"] == ["/console/nodes"]


def test_sign_out_revokes_the_refresh_token_and_ends_the_session(console: Console) -> None:
    client = console.client()
    page = sign_in(console, client).get_data(as_text=True)
    with console.services.db.session() as session:
        families = {row.family_id for row in session.scalars(select(RefreshToken))}
    assert len(families) == 1
    out = client.post("/console/logout", data={"csrf_token": hidden_fields(page)["csrf_token"]}, base_url=console.url)
    assert out.status_code == 200 and 'id="signed-out"' in out.get_data(as_text=True)
    assert any(h.startswith(f"{COOKIE}=;") for h in out.headers.getlist("Set-Cookie"))
    with console.services.db.session() as session:
        assert all(row.revoked for row in session.scalars(select(RefreshToken)))
        assert session.scalars(select(ConsoleSession)).first() is None
    assert client.get("/console/jobs", base_url=console.url).status_code == 303


def test_refusal_shows_trace_and_the_documented_cause_and_fix(console: Console) -> None:
    job = refused_job(console.world)
    client = console.client()
    sign_in(console, client)
    status, body, _ = _get(console, client, f"/console/jobs/{job}")
    doc = error_docs()["authz.denied"]
    assert status == 200 and 'id="refusal-code">authz.denied<' in body
    cause = re.search(r'id="refusal-cause">(.*?)</dd>', body, re.S)
    fix = re.search(r'id="refusal-fix">(.*?)</dd>', body, re.S)
    assert cause and fix
    shown = [html.unescape(re.sub(r"</?code>", "", m.group(1))) for m in (cause, fix)]
    assert shown == [plain(doc.cause), plain(doc.fix)]
    assert "<code>jobsts authz check" in fix.group(1)  # the documentation's code spans
    assert body.count('class="verdict-') == 6 and "verdict-fail" in body


def test_untrusted_spec_and_output_are_escaped(console: Console) -> None:
    job = succeeded_job(console.world, stdout=HOSTILE, spec={"argv": ["/bin/echo", HOSTILE]})
    client = console.client()
    sign_in(console, client)
    status, body, _ = _get(console, client, f"/console/jobs/{job}")
    assert status == 200
    assert "<script>console.log" not in body and "<img src=x" not in body and '<b id="injected-bold">' not in body
    assert "&lt;script&gt;console.log" in body


def test_cursor_pagination_walks_every_job_once_in_order(console: Console) -> None:
    for _ in range(3):
        refused_job(console.world)
    ids = {queued_job(console.world) for _ in range(PAGE_SIZE + 5)}
    client = console.client()
    sign_in(console, client)
    seen: list[str] = []
    path: str | None = "/console/jobs?state=queued"
    pages = 0
    while path is not None:
        status, body, _ = _get(console, client, path.replace("&amp;", "&"))
        assert status == 200
        pages += 1
        seen += re.findall(r'href="/console/jobs/([0-9a-f-]{36})"', body)
        found = re.search(r'href="([^"]+)" id="next-page"', body)
        path = found.group(1) if found else None
    assert pages == 2
    assert len(seen) == len(set(seen)) == PAGE_SIZE + 5 and set(seen) == ids


def test_cursor_pages_do_not_overlap(console: Console) -> None:
    for _ in range(12):
        queued_job(console.world)
    viewer = Viewer("user:jobmgr/nobody", sees_all=True, is_admin=False)
    seen: list[str] = []
    cursor = None
    with console.services.db.session() as session:
        while True:
            page = list_page(session, viewer, ListingFilter(limit=5, cursor=cursor))
            seen += [job.id for job in page.jobs]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        stamps = [session.get_one(Job, i).created_at for i in seen]
    assert len(seen) == len(set(seen)) == 12
    assert stamps == sorted(stamps, reverse=True)


def test_activity_nodes_and_realms_pages_show_their_data(console: Console) -> None:
    succeeded_job(console.world)
    refused_job(console.world)
    client = console.client()
    sign_in(console, client, "carol")
    _, body, _ = _get(console, client, "/console/activity")
    assert body.count("<svg") == 2 and 'class="state-succeeded"' in body and 'class="state-refused"' in body
    assert "authz.denied" in body and "<title>" in body
    _, body, _ = _get(console, client, "/console/nodes")
    assert "node1" in body and "trusting" in body and "jobmgr" in body and "batch" in body
    _, body, _ = _get(console, client, "/console/realms")
    assert 'id="realm-jobmgr"' in body and 'id="realm-cellB"' in body
    assert "directory: ok" in body and 'class="badge key-active"' in body
    assert "<td>ID tokens</td>" in body  # the RS256 ring of an ES256 realm
    kid = console.services.keys.describe("jobmgr")[0]["kid"]
    assert kid in body


def test_a_revoked_access_token_ends_the_session(console: Console) -> None:
    client = console.client()
    sign_in(console, client)
    with console.services.db.session() as session:
        row = session.scalars(select(ConsoleSession)).one()
        console.services.revoke(session, row.access_jti, row.access_exp, "test")
    response = client.get("/console/jobs", base_url=console.url)
    assert response.status_code == 303 and urlsplit(response.headers["Location"]).path == "/console/login"


def test_an_expiring_access_token_is_refreshed_once_and_the_session_goes_on(console: Console) -> None:
    client = console.client()
    sign_in(console, client)
    with console.services.db.session() as session:
        row = session.scalars(select(ConsoleSession)).one()
        old_jti, row.access_exp = row.access_jti, int(time.time()) + 5  # inside the refresh margin
    assert client.get("/console/jobs", base_url=console.url).status_code == 200
    with console.services.db.session() as session:
        row = session.scalars(select(ConsoleSession)).one()
        tokens = list(session.scalars(select(RefreshToken)))
        assert row.access_jti != old_jti and row.access_exp > int(time.time()) + 60
    # Rotation (RFC 9700 §4.14.2): the first refresh token is spent, its successor is live.
    assert sorted(t.spent_at is None for t in tokens) == [False, True] and not any(t.revoked for t in tokens)
    assert client.get("/console/nodes", base_url=console.url).status_code == 200


def test_signing_in_again_replaces_the_session(console: Console) -> None:
    client = console.client()
    sign_in(console, client)
    sign_in(console, client, "carol")
    with console.services.db.session() as session:
        rows = list(session.scalars(select(ConsoleSession)))
        families = {t.family_id: t.revoked for t in session.scalars(select(RefreshToken))}
    assert [row.username for row in rows] == ["carol"]
    assert sorted(families.values()) == [False, True]  # john's session's family is revoked
