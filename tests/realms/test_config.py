"""Realm configuration is validated at load: one ConfigError line naming the realm and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from realms.config import TokenPolicy, load_realms
from realms.errors import ConfigError
from realms.registries.ldap.config import LdapRegistryConfig
from realms.registries.ldif.config import LdifRegistryConfig

SEED = Path(__file__).resolve().parents[1] / "ldap" / "jobmgr.ldif"
LDAP: dict[str, Any] = {
    "type": "ldap",
    "url": "ldap://127.0.0.1:389",
    "bind_dn": "cn=sts,ou=services,dc=x",
    "bind_password": "secret",
    "user_base": "ou=people,dc=x",
    "group_base": "ou=groups,dc=x",
}


def load(registry: dict[str, Any], **realm: Any) -> Any:
    return load_realms([{"name": "r1", "registry": registry, **realm}], Path.cwd())["r1"]


def refused(registry: dict[str, Any], field: str, **realm: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(registry, **realm)
    assert "r1" in info.value.message and field in info.value.message, info.value.message
    assert "\n" not in info.value.message
    return info.value


def test_ldap_defaults() -> None:
    config = load(dict(LDAP)).registry
    assert isinstance(config, LdapRegistryConfig)
    assert (config.host, config.port, config.use_ssl, config.start_tls, config.tls_verify) == (
        "127.0.0.1",
        389,
        False,
        False,
        True,
    )
    assert config.schema.unique_id == "dn" and config.schema.group_mode == "member" and config.schema.nested
    assert "secret" not in repr(config)


def test_ldaps_default_port_and_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R1_LDAP_PASSWORD", "from-env")
    settings = {**LDAP, "url": "ldaps://ldap.example", "bind_password_env": "R1_LDAP_PASSWORD"}
    del settings["bind_password"]
    config = load(settings).registry
    assert (config.port, config.use_ssl, config.bind_password) == (636, True, "from-env")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"url": "http://x"}, "url"),
        ({"url": "ldap://x/dc=x"}, "url"),
        ({"url": "ldap://x:99999"}, "url"),
        ({"url": "ldaps://x", "start_tls": True}, "start_tls"),
        ({"start_tls": "yes"}, "start_tls"),
        ({"user_base": None}, "user_base"),
        ({"group_base": None}, "group_base"),
        ({"user_base": "not a dn"}, "user_base"),
        ({"group_mode": "members"}, "group_mode"),
        ({"group_mode": "posix", "nested": True}, "nested"),
        ({"max_depth": 1000}, "max_depth"),
        ({"max_depth": True}, "max_depth"),
        ({"receive_timeout": 0}, "receive_timeout"),
        ({"connect_timeout": "5"}, "connect_timeout"),
        ({"pool_size": 0}, "pool_size"),
        ({"bind_password": None}, "bind_dn"),
        ({"bind_password_env": "NOT_SET_ANYWHERE_42"}, "bind_password_env"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
        ({"user_attribute": "uid)(x"}, "user_attribute"),
        ({"group_object_classes": []}, "group_object_classes"),
    ],
)
def test_ldap_mistakes(change: dict[str, Any], field: str) -> None:
    settings = {**LDAP, **change}
    settings = {k: v for k, v in settings.items() if v is not None}
    if "bind_password_env" in change:
        settings.pop("bind_password")
    refused(settings, field)


def test_ldif_settings() -> None:
    config = load({"type": "ldif", "path": str(SEED), "allow_plaintext": True, "max_depth": 3}).registry
    assert isinstance(config, LdifRegistryConfig)
    assert config.allow_plaintext and config.schema.max_depth == 3


def test_ldif_relative_path_is_taken_from_the_config_folder() -> None:
    realms = load_realms([{"name": "r1", "registry": {"type": "ldif", "path": "jobmgr.ldif"}}], SEED.parent)
    registry = realms["r1"].registry
    assert isinstance(registry, LdifRegistryConfig) and registry.path == SEED


@pytest.mark.parametrize(
    ("registry", "field"),
    [
        ({"type": "ldif"}, "path"),
        ({"type": "ldif", "path": "/nonexistent.ldif"}, "path"),
        ({"type": "ldif", "path": str(SEED), "allow_plaintext": "yes"}, "allow_plaintext"),
        ({"type": "ldif", "path": str(SEED), "url": "ldap://x"}, "url"),
        ({"type": "nis"}, "registry.type"),
    ],
)
def test_ldif_mistakes(registry: dict[str, Any], field: str) -> None:
    refused(registry, field)


def test_token_policy() -> None:
    realm = load({"type": "ldif", "path": str(SEED)}, token={"algorithm": "EdDSA", "access_token_ttl": 600})
    assert realm.token == TokenPolicy(algorithm="EdDSA", access_token_ttl=600)
    refused({"type": "ldif", "path": str(SEED)}, "token.algorithm", token={"algorithm": "HS256"})
    refused({"type": "ldif", "path": str(SEED)}, "token.leeway", token={"leeway": 3600})
    refused({"type": "ldif", "path": str(SEED)}, "token.colour", token={"colour": 1})


def test_realm_level_mistakes() -> None:
    ldif = {"type": "ldif", "path": str(SEED)}
    with pytest.raises(ConfigError, match="name"):
        load_realms([{"name": "bad name", "registry": ldif}], Path.cwd())
    with pytest.raises(ConfigError, match="defined twice"):
        load_realms([{"name": "a", "registry": ldif}, {"name": "a", "registry": ldif}], Path.cwd())
    with pytest.raises(ConfigError, match="at least one"):
        load_realms([], Path.cwd())
    refused(ldif, "extra", extra=1)
