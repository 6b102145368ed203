"""STS answers as errors: RFC 9457 problem details and RFC 6749 §5.2 error responses.

A network failure or a 5xx is ``agent.sts_unavailable`` (worth retrying); any other refusal is
``agent.sts_refused`` carrying the STS's own ``code``; 409 ``job.lease_lost`` is ``agent.lease_lost``.
"""

from __future__ import annotations

import httpx

from agent_client.errors import LeaseLost, StsRefused, StsUnavailable
from realms.errors import JobstsError


def problem_of(response: httpx.Response) -> tuple[str, str]:
    """The STS's code and detail: ``code``/``detail`` (RFC 9457 §3) or ``error``/``error_description``
    (RFC 6749 §5.2); for a body that is not JSON, no code and the start of the text."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    if not isinstance(body, dict):
        return "", ""
    code = str(body.get("code") or body.get("error") or "")[:80]
    detail = str(body.get("detail") or body.get("error_description") or body.get("title") or "")
    # Why: an RFC 6749 §5.2 error_description starts with the code; print it once, not twice.
    if code and detail.startswith(f"{code}: "):
        detail = detail[len(code) + 2 :]
    return code, detail[:300]


def unreachable(base_url: str, error: httpx.HTTPError) -> StsUnavailable:
    reason = str(error) or type(error).__name__
    return StsUnavailable(
        f"STS {base_url} did not answer: {type(error).__name__}",
        url=base_url,
        http_status=None,
        problem_code="",
        detail=reason[:300],
    )


def refusal(response: httpx.Response, base_url: str, what: str, caller: str) -> JobstsError:
    """The error for an answer that is not a success; ``caller`` ("node n1") goes into the message."""
    code, detail = problem_of(response)
    status = response.status_code
    where = f" for {caller}" if caller else ""
    data = {"http_status": status, "problem_code": code, "detail": detail or response.reason_phrase}
    if status >= 500:
        return StsUnavailable(f"STS {base_url} answered {status}", url=base_url, **data)
    if status == 409 and code == "job.lease_lost":
        return LeaseLost(f"{caller or 'the caller'} lost the lease of {what}: {detail}", **data)
    return StsRefused(f"STS refused {what}{where}: {status} {code} {detail}".rstrip(), **data)


def malformed(what: str, caller: str, problem: str) -> StsRefused:
    """An answer the contract refuses (a lease, a token response): the STS is not speaking it."""
    where = f" to {caller}" if caller else ""
    return StsRefused(
        f"STS sent a malformed {what}{where}: {problem}", http_status=200, problem_code="", detail=problem
    )
