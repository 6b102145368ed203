"""Fixtures for the production tests: an in-process STS whose realms are LDAP directories on the
harness slapd (so every log line of a real directory round trip is covered)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from sts import create_app
from tests.ldap_harness import SlapdServer
from tests.production.servers import write_sts_config


@pytest.fixture
def ldap_config(tmp_path: Path, database_url: str, slapd: SlapdServer) -> Path:
    return write_sts_config(tmp_path, database_url, [slapd.realm_table("jobmgr"), slapd.realm_table("cellB")])


@pytest.fixture
def ldap_app(ldap_config: Path) -> Iterator[Flask]:
    application = create_app(ldap_config)
    application.config["TESTING"] = True
    yield application
    application.extensions["jobsts"].close()
