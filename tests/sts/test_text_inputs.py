"""Every text input is UTF-8 text (realms/text.py, sts/http/text_inputs.py), and every token's
lifetime is within its realm's policy (realms/tokens/lifetimes.py). Each test fails without its check."""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from collections.abc import Callable
from urllib.parse import parse_qsl

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from realms.errors import AccessIdInvalid
from realms.identity.access_id import AccessId
from realms.wire.errors import JobInvalidSpec
from realms.wire.spec import parse_spec
from sts.http.text_inputs import RequestTextInvalid, _check_urlencoded
from tests.sts.conftest import bearer

pytestmark = pytest.mark.db
SURROGATE_UTF8 = "%ED%A0%80"  # U+D800 encoded as if it were a character: not UTF-8


def _code(response: object) -> str:
    body = response.get_json()  # type: ignore[attr-defined]
    return str(body["code"])


def test_a_form_field_that_is_not_utf8_is_refused_with_request_text(client: FlaskClient) -> None:
    response = client.post(
        "/realms/jobmgr/token",
        data=f"grant_type=password&username={SURROGATE_UTF8}&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"  # RFC 6749 §5.2 form on the token endpoint
    assert _code(response) == "request.text"


def test_a_query_parameter_that_is_not_utf8_is_refused(client: FlaskClient, admin_token: str) -> None:
    response = client.get(f"/api/v1/jobs?state={SURROGATE_UTF8}", headers=bearer(admin_token))
    assert response.status_code == 400 and _code(response) == "request.text"


def test_a_header_that_is_not_utf8_is_refused(client: FlaskClient, admin_token: str) -> None:
    bad = b"\xed\xa0\x80".decode("latin-1")  # what WSGI hands over for those raw bytes
    response = client.get("/api/v1/jobs", headers={**bearer(admin_token), "X-Trace": bad})
    assert response.status_code == 400 and _code(response) == "request.text"


def test_a_json_body_with_a_surrogate_is_refused_not_a_500(client: FlaskClient, admin_token: str) -> None:
    body = '{"node": "node1", "type": "shell", "spec": {"argv": ["/bin/echo", "\\ud800"]}}'
    response = client.post("/api/v1/jobs", data=body, content_type="application/json", headers=bearer(admin_token))
    assert response.status_code == 400 and _code(response) == "request.text"


def test_a_spec_string_with_a_surrogate_is_refused_with_the_spec_code() -> None:
    spec = json.loads('{"argv": ["/bin/echo", "\\udc80"]}')
    with pytest.raises(JobInvalidSpec) as caught:
        parse_spec(spec)
    assert caught.value.data["field"] == "spec.argv[1]"


def _invisible_code_points() -> list[str]:
    found = []
    for point in range(sys.maxunicode + 1):
        ch = chr(point)
        category = unicodedata.category(ch)
        if (category[0] == "Z" and ch != " ") or category in ("Cc", "Cf", "Co", "Cs"):
            found.append(ch)
    return [*found, "\u115f", "\u3164", "\uffa0", "\u2800"]


def test_access_ids_refuse_every_separator_and_invisible_character() -> None:
    """U+1680 OGHAM SPACE MARK (the fuzz finding) and its whole class: categories Z* and C*."""
    accepted = []
    for ch in _invisible_code_points():
        for text in (f"user:r/a{ch}b", f"group:r/{ch}", f"user:r/x{ch}"):
            try:
                AccessId.parse(text)
            except AccessIdInvalid:
                continue
            accepted.append(f"U+{ord(ch):04X}")
    assert accepted == []
    for text in ("user:r/Domain Users", "group:r/équipe", "user:r/uid=john,ou=people"):
        assert str(AccessId.parse(text)) == text  # round trip stays exact


def test_a_token_living_longer_than_the_realm_policy_is_refused_at_the_api(
    client: FlaskClient, mint: Callable[..., str]
) -> None:
    now = int(time.time())
    # jobmgr's policy: access tokens live 300 s (the default); 3000 s is well within the ceiling.
    too_long = mint(exp=now + 3000)
    response = client.get("/api/v1/jobs", headers=bearer(too_long))
    assert response.status_code == 401 and _code(response) == "token.lifetime"
    issued_long_ago = mint(iat=now - 3000, nbf=now - 10, exp=now + 100)
    response = client.get("/api/v1/jobs", headers=bearer(issued_long_ago))
    assert response.status_code == 401 and _code(response) == "token.lifetime"
    assert client.get("/api/v1/jobs", headers=bearer(mint(exp=now + 300))).status_code == 200


@given(
    st.lists(
        st.sampled_from(["a", "b", "=", "&", "+", "%", ";", "\u00e9", "%ED", "%A0", "%80", "%C3%A9", "%ZZ", "%4"])
    ).map("".join)
)
def test_the_ascii_shortcut_of_the_form_check_agrees_with_strict_decoding(raw: str) -> None:
    """The shortcut (ASCII without "%") refuses exactly what strict percent-decoding refuses."""
    try:
        parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
        strict_ok = True
    except UnicodeDecodeError:
        strict_ok = False
    if strict_ok:
        _check_urlencoded(raw, "form body")
    else:
        with pytest.raises(RequestTextInvalid):
            _check_urlencoded(raw, "form body")
