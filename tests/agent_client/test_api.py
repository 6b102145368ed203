"""The agent's side of the STS client: error mapping, assertion, typed documents (httpx MockTransport, no network)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.api import AgentApi, load_node_key
from agent_client.errors import AgentConfigInvalid, LeaseLost, StsRefused, StsUnavailable
from realms.wire.documents import Result

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
    assert caught.value.problem_code == "node.unknown" and "node1" in caught.value.message


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
