"""The agent's side of the STS client: error mapping, assertion, typed documents (httpx MockTransport, no network)."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.api import AgentApi, StsApi, UserAuth, load_node_key
from agent_client.api.login_store import current_login, store_session, tokens_path
from agent_client.api.oauth import TokenResponse
from agent_client.errors import AgentConfigInvalid, LeaseLost, SessionMissing, StsRefused, StsUnavailable
from realms.wire.documents import MalformedJob, Result

KEY = ec.generate_private_key(ec.SECP256R1())
TOKEN = {"access_token": "agent-token", "token_type": "Bearer", "expires_in": 300}


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> AgentApi:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json=TOKEN)
        return handler(request)

    return AgentApi.connect("https://sts.test/", "node1", "cellB", KEY, "ES256", transport=httpx.MockTransport(route))


def test_client_assertion_is_rfc7523_shaped() -> None:
    with _client(lambda r: httpx.Response(204)) as client:
        claims = jwt.decode(
            client.auth.client_assertion(), KEY.public_key(), algorithms=["ES256"], audience=client.auth.token_url
        )
    assert claims["iss"] == claims["sub"] == "node1"
    assert client.auth.token_url == "https://sts.test/realms/cellB/token"
    assert claims["exp"] - claims["iat"] <= 300 and claims["jti"]


def test_server_errors_are_unavailable() -> None:
    with _client(lambda r: httpx.Response(503)) as client, pytest.raises(StsUnavailable) as caught:
        client.lease(0)
    assert caught.value.code == "agent.sts_unavailable"


def test_connection_failure_is_unavailable() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(boom) as client, pytest.raises(StsUnavailable):
        client.revocations()


def test_refusal_carries_the_problem_code() -> None:
    problem = {"code": "node.unknown", "detail": "node node1 is not registered", "status": 403}
    with _client(lambda r: httpx.Response(403, json=problem)) as client, pytest.raises(StsRefused) as caught:
        client.lease(0)
    assert caught.value.data["problem_code"] == "node.unknown" and "node1" in caught.value.message


def test_lease_lost_is_its_own_error() -> None:
    problem = {"code": "job.lease_lost", "detail": "lease expired"}
    with _client(lambda r: httpx.Response(409, json=problem)) as client, pytest.raises(LeaseLost):
        client.start("job-1")


def test_other_conflicts_are_refusals() -> None:
    problem = {"code": "job.result_conflict", "detail": "different result"}
    with _client(lambda r: httpx.Response(409, json=problem)) as client, pytest.raises(StsRefused):
        client.result("job-1", Result("failed", 1, "", "", None, None, None, ()))


def test_malformed_lease_is_refused() -> None:
    with _client(lambda r: httpx.Response(200, json={"job": "x"})) as client, pytest.raises(StsRefused):
        client.lease(0)


def test_jwks_max_age_is_read() -> None:
    def jwks(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": []}, headers={"Cache-Control": "public, max-age=120"})

    with _client(jwks) as client:
        assert client.jwks("jobmgr") == ({"keys": []}, 120)


def test_revocations_are_parsed() -> None:
    body = {"revoked": [{"jti": "a", "exp": 5}, {"jti": 3}, "junk"]}
    with _client(lambda r: httpx.Response(200, content=json.dumps(body))) as client:
        assert client.revocations() == {"a": 5}


def test_node_key_must_match_the_algorithm(tmp_path: object) -> None:
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    path = Path(str(tmp_path)) / "node.key"
    path.write_bytes(
        KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    assert isinstance(load_node_key(path, "ES256"), ec.EllipticCurvePrivateKey)
    with pytest.raises(AgentConfigInvalid, match="cannot sign EdDSA"):
        load_node_key(path, "EdDSA")
    path.write_text("not a key")
    with pytest.raises(AgentConfigInvalid, match="not an unencrypted PEM"):
        load_node_key(path, "ES256")


def test_a_lease_with_a_malformed_job_is_kept_for_refusal() -> None:
    lease = {"job": {"id": "job-1", "spec": {"argv": "rm -rf /"}}, "job_token": "t", "lease_expires_at": 5}
    with _client(lambda r: httpx.Response(200, json=lease)) as client:
        leased = client.lease(0)
    assert leased is not None and isinstance(leased.job, MalformedJob)
    assert leased.job.id == "job-1" and leased.job.error.code == "job.invalid_spec"


@pytest.mark.parametrize(
    "lease",
    [
        {"job": {"id": "../x"}, "job_token": "t"},
        {"job": {"id": "job-1"}, "job_token": 5},
        {"job": {"id": "job-1"}, "job_token": "t", "lease_expires_at": "soon"},
    ],
)
def test_a_lease_whose_envelope_is_broken_is_refused(lease: dict[str, object]) -> None:
    with _client(lambda r: httpx.Response(200, json=lease)) as client, pytest.raises(StsRefused) as caught:
        client.lease(0)
    assert "malformed lease" in caught.value.message


# --- the stored login (UserAuth) ---------------------------------------------------------------


@pytest.fixture
def logged_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    url = "https://sts.test"
    store_session(url, "jobmgr", "john", TokenResponse("old-access", 300, "old-refresh"))
    return url


def _sts(seen: list[str], refresh: httpx.Response) -> httpx.MockTransport:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/realms/jobmgr/token":
            seen.append(f"refresh {request.content.decode()}")
            return refresh
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer old-access":
            return httpx.Response(401, json={"code": "token.expired", "detail": "expired"})
        return httpx.Response(200, json={"nodes": []})

    return httpx.MockTransport(route)


def test_a_401_refreshes_the_login_once_and_stores_the_rotated_tokens(logged_in: str) -> None:
    seen: list[str] = []
    rotated = httpx.Response(
        200,
        json={"access_token": "new-access", "token_type": "Bearer", "expires_in": 300, "refresh_token": "new-refresh"},
    )
    with StsApi(logged_in, UserAuth(logged_in), transport=_sts(seen, rotated)) as api:
        assert api.call_json("GET", "/api/v1/nodes", "the node list") == {"nodes": []}
    assert seen == [
        "Bearer old-access",
        "refresh grant_type=refresh_token&refresh_token=old-refresh",
        "Bearer new-access",
    ]
    assert current_login(logged_in).refresh_token == "new-refresh"
    assert stat.S_IMODE(tokens_path().stat().st_mode) == 0o600


def test_an_expiring_login_is_refreshed_before_the_request(logged_in: str) -> None:
    seen: list[str] = []
    rotated = httpx.Response(
        200,
        json={"access_token": "new-access", "token_type": "Bearer", "expires_in": 300, "refresh_token": "new-refresh"},
    )
    later = UserAuth(logged_in, clock=lambda: time.time() + 290)
    with StsApi(logged_in, later, transport=_sts(seen, rotated)) as api:
        api.call("GET", "/api/v1/nodes", "the node list")
    assert seen[0].startswith("refresh ") and seen[1:] == ["Bearer new-access"]


def test_a_refused_refresh_forgets_the_login(logged_in: str) -> None:
    refused = httpx.Response(400, json={"error": "invalid_grant", "code": "refresh.reused"})
    with (
        StsApi(logged_in, UserAuth(logged_in), transport=_sts([], refused)) as api,
        pytest.raises(SessionMissing, match="can no longer be refreshed"),
    ):
        api.call("GET", "/api/v1/nodes", "the node list")
    with pytest.raises(SessionMissing, match="not logged in"):
        current_login(logged_in)
