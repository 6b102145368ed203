"""A failed login never logs the username as typed (sts/oauth/log_names.py): people type passwords
into the username field. The log gets a keyed digest that is stable for one name."""

from __future__ import annotations

import logging
import re

import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.db


def test_a_failed_login_logs_a_keyed_digest_not_the_typed_name(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "Sup3rSecretCANARYpassword"
    caplog.set_level(logging.DEBUG)
    digests = []
    for _ in range(2):
        response = client.post(
            "/realms/jobmgr/token", data={"grant_type": "password", "username": canary, "password": "x"}
        )
        assert response.status_code == 400 and response.get_json()["code"] == "login.failed"
        digests.append(re.findall(r"h:[0-9a-f]{16}", caplog.text))
    assert canary not in caplog.text and canary.lower() not in caplog.text.lower()
    assert digests[0] and digests[1][-1] == digests[0][-1]  # the same typed name, the same digest
