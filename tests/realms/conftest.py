"""Fixtures for the realms tests: one registry factory per backend (the conformance suite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from realms.config import load_realms
from realms.registries.base import Registry
from tests.ldap_harness import SlapdServer, ldif_realm_table

MakeRegistry = Callable[..., Registry]

# The backends every conformance test runs against: the LDIF file itself, and slapd loaded
# from the same file, read by member search and by the memberOf overlay.
BACKENDS = [
    pytest.param("ldif", id="ldif"),
    pytest.param("ldap-member", id="ldap-member", marks=pytest.mark.slapd),
    pytest.param("ldap-memberOf", id="ldap-memberOf", marks=pytest.mark.slapd),
]


def realm_table(backend: str, realm: str, request: pytest.FixtureRequest, **settings: Any) -> dict[str, Any]:
    if backend == "ldif":
        return ldif_realm_table(realm, **settings)
    server: SlapdServer = request.getfixturevalue("slapd")
    settings.setdefault("group_mode", backend.partition("-")[2])
    return server.realm_table(realm, **settings)


@pytest.fixture
def open_registry() -> Iterator[Callable[[dict[str, Any]], Registry]]:
    """Open a registry from one ``[[realms]]`` table; every registry is closed after the test."""
    opened: list[Registry] = []

    def _open(table: dict[str, Any]) -> Registry:
        config = load_realms([table], Path.cwd())[table["name"]]
        registry = config.open_registry()
        opened.append(registry)
        return registry

    yield _open
    for registry in opened:
        registry.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_registry(
    backend: str, request: pytest.FixtureRequest, open_registry: Callable[[dict[str, Any]], Registry]
) -> MakeRegistry:
    """``make_registry("jobmgr", max_depth=2)``: a seed realm on the backend under test."""

    def _make(realm: str = "jobmgr", **settings: Any) -> Registry:
        return open_registry(realm_table(backend, realm, request, **settings))

    return _make
