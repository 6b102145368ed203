"""A small fake STS implementing the agent side of the STS<->agent HTTP contract, on loopback.

It checks the client assertion (private_key_jwt, RFC 7523) with the node's registered public
key, hands out bearer agent tokens, serves queued leases, records start/heartbeat/result
calls, and serves realm JWKS and a revocation list. Enough to drive ``agent_client.loop``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from realms.wire.documents import MAX_LEASE_WAIT


@dataclass
class FakeState:
    node_id: str
    node_public_key: Any
    realm_jwks: dict[str, dict[str, str]]  # each realm's public signing key (its JWKS)
    leases: list[dict[str, Any]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    revoked: list[dict[str, Any]] = field(default_factory=list)
    lease_lost: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    # Takes results with /leases (answering their outcomes), as the STS does; False: an older STS.
    carries_results: bool = False
    results_calls: int = 0  # calls of POST /api/v1/agent/results
    carried: list[str] = field(default_factory=list)  # job ids whose result came with a lease
    assertion_jtis: set[str] = field(default_factory=set)
    base_url: str = ""
    # GET /api/v1/agent/wait: None, no such route (an older STS, 404); else each call takes the
    # next answer (``{"work": answer}``, or an HTTP status to refuse with), 503 once none is left.
    wait_answers: list[bool | int] | None = None
    wait_timeouts: list[int] = field(default_factory=list)  # the ``timeout`` each wait asked for
    lease_waits: list[float] = field(default_factory=list)  # the ``wait`` each lease asked for


def _problem(status: int, code: str, detail: str) -> Response:
    response = jsonify({"type": "about:blank", "title": code, "status": status, "code": code, "detail": detail})
    response.status_code = status
    response.content_type = "application/problem+json"
    return response


def create_fake_sts(state: FakeState) -> Flask:
    app = Flask("fake_sts")

    def authorized() -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer agent-token-")

    @app.post("/realms/<realm>/token")
    def token(realm: str) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials" or form.get("client_id") != state.node_id:
            return _problem(400, "invalid_request", "bad grant")
        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return _problem(400, "invalid_client", "bad assertion type")
        try:
            claims = jwt.decode(
                form.get("client_assertion", ""),
                state.node_public_key,
                algorithms=["ES256", "EdDSA"],
                audience=f"{state.base_url}/realms/{realm}/token",
                options={"require": ["iss", "sub", "aud", "exp", "jti", "iat"]},
            )
        except jwt.PyJWTError as exc:
            return _problem(401, "invalid_client", str(exc))
        if claims["iss"] != state.node_id or claims["sub"] != state.node_id or claims["jti"] in state.assertion_jtis:
            return _problem(401, "invalid_client", "bad assertion")
        if claims["exp"] - claims["iat"] > 300:
            return _problem(401, "invalid_client", "assertion lives too long")
        state.assertion_jtis.add(claims["jti"])
        state.tokens_issued += 1
        token = f"agent-token-{state.tokens_issued}"
        return jsonify({"access_token": token, "token_type": "Bearer", "expires_in": 300})

    @app.get("/realms/<realm>/jwks")
    def jwks(realm: str) -> Response:
        if realm not in state.realm_jwks:
            return _problem(404, "realm.unknown", realm)
        response = jsonify({"keys": [state.realm_jwks[realm]]})
        response.headers["Cache-Control"] = "public, max-age=60"
        return response

    @app.post("/api/v1/agent/lease")
    def lease() -> Response:
        if not authorized():
            return _problem(401, "auth.required", "no agent token")
        body = request.get_json(force=True)
        if not isinstance(body, dict) or not 0 <= int(body.get("wait", 0)) <= 30:
            return _problem(400, "input.invalid", "wait")
        if not state.leases:
            return Response(status=204)
        return jsonify(state.leases.pop(0))

    @app.post("/api/v1/agent/jobs/<job_id>/start")
    def start(job_id: str) -> Response:
        if not authorized():
            return _problem(401, "auth.required", "no agent token")
        if job_id in state.lease_lost:
            return _problem(409, "job.lease_lost", f"node {state.node_id} no longer holds job {job_id}")
        state.started.append(job_id)
        return jsonify({"state": "running"})

    @app.post("/api/v1/agent/jobs/<job_id>/heartbeat")
    def heartbeat(job_id: str) -> Response:
        state.heartbeats.append(job_id)
        return jsonify({"lease_expires_at": 2_000_000_000})

    @app.post("/api/v1/agent/jobs/<job_id>/result")
    def result(job_id: str) -> Response:
        if not authorized():
            return _problem(401, "auth.required", "no agent token")
        body = request.get_json(force=True)
        if job_id in state.results and state.results[job_id] != body:
            return _problem(409, "job.result_conflict", "different result")
        state.results[job_id] = body
        return jsonify({"state": body.get("outcome")})

    @app.get("/api/v1/agent/wait")
    def wait() -> Response:
        if state.wait_answers is None:
            return _problem(404, "not_found", "no wait route")
        if not authorized():
            return _problem(401, "auth.required", "no agent token")
        state.wait_timeouts.append(int(request.args["timeout"]))
        answer = state.wait_answers.pop(0) if state.wait_answers else 503
        if isinstance(answer, bool):
            return jsonify({"work": answer})
        return _problem(answer, "sts.unavailable", "refused by the test")

    @app.post("/api/v1/agent/leases")
    def leases() -> Response:
        if not authorized():
            return _problem(401, "auth.required", "no agent token")
        body = request.get_json(force=True)
        wait = float(body.get("wait", 0)) if isinstance(body, dict) else -1.0
        if not 0 <= wait <= MAX_LEASE_WAIT:
            return _problem(400, "input.invalid", "wait")
        state.lease_waits.append(wait)
        count = int(body.get("max_jobs", 1))
        handed, state.leases[:] = state.leases[:count], state.leases[count:]
        if state.carries_results and "results" in body:
            state.carried.extend(item["job_id"] for item in body["results"])
            return jsonify({"leases": handed, "outcomes": record(body["results"])})
        return jsonify({"leases": handed}) if handed else Response(status=204)

    @app.post("/api/v1/agent/claims")
    def claims() -> Response:
        if not authorized():
            return _problem(401, "auth.required", "no agent token")
        outcomes = []
        for claim in request.get_json(force=True)["claims"]:
            job_id = claim["job_id"]
            if job_id in state.lease_lost:
                outcomes.append({"job_id": job_id, "state": "queued", "code": "job.lease_lost", "message": "lost"})
            else:
                state.started.append(job_id)
                outcomes.append({"job_id": job_id, "state": "running", "lease_expires_at": 2_000_000_000})
        return jsonify({"outcomes": outcomes})

    def record(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        outcomes: list[dict[str, Any]] = []
        for item in items:
            job_id, body = item["job_id"], item["result"]
            if job_id in state.results and state.results[job_id] != body:
                outcomes.append({"job_id": job_id, "state": None, "code": "job.result_conflict", "message": "x"})
                continue
            state.results[job_id] = body
            outcomes.append({"job_id": job_id, "state": body.get("outcome")})
        return outcomes

    @app.post("/api/v1/agent/results")
    def results() -> Response:
        if not authorized():
            return _problem(401, "auth.required", "no agent token")
        state.results_calls += 1
        return jsonify({"outcomes": record(request.get_json(force=True)["results"])})

    @app.get("/api/v1/agent/revocations")
    def revocations() -> Response:
        if not authorized():
            return _problem(401, "auth.required", "no agent token")
        return jsonify({"revoked": state.revoked})

    return app


@contextmanager
def serve(state: FakeState) -> Iterator[str]:
    """Serve the fake STS on 127.0.0.1 in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, create_fake_sts(state), threaded=True)
    state.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state.base_url
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
