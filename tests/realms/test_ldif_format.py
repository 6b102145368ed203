"""The strict LDIF reader (RFC 2849)."""

from __future__ import annotations

from pathlib import Path

import pytest

from realms.config import load_realms
from realms.errors import ConfigError
from realms.registries.ldif.format import parse_ldif


def test_records_folding_base64_and_comments() -> None:
    text = (
        "version: 1\n"
        "# a comment\n"
        "dn: uid=john,ou=people,\n"
        " dc=example\n"
        "objectClass: inetOrgPerson\n"
        "cn:: Sm9obiDDqQ==\n"
        "description: folded\n"
        "  value\n"
        "\n"
        "\n"
        "dn:: dWlkPWFubmEsZGM9ZXhhbXBsZQ==\n"
        "UID: anna\n"
    )
    john, anna = parse_ldif(text)
    assert john.dn == "uid=john,ou=people,dc=example"
    assert john.first("CN") == "John é"
    assert john.get("description") == ["folded value"]
    assert john.object_classes == frozenset({"inetorgperson"})
    assert anna.dn == "uid=anna,dc=example"
    assert anna.get("uid") == ["anna"] and anna.names["uid"] == "UID"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("objectClass: top\n", "must start with 'dn:'"),
        ("dn: dc=x\nchangetype: add\n", "change records"),
        ("dn: dc=x\ncontrol: 1.2.3\n", "change records"),
        ("dn: dc=x\njpegPhoto:< file:///etc/passwd\n", "URL values"),
        ("dn: dc=x\ncn:: !!!\n", "bad base64"),
        ("dn: dc=x\nno colon here\n", "expected 'attribute: value'"),
        ("dn: dc=x\nbad name: v\n", "bad attribute name"),
        ("dn: dc=x\ncn: a\n\ndn: DC=X\ncn: b\n", "appears twice"),
        ("version: 2\n\ndn: dc=x\n", "version 1"),
        ("dn:\n", "empty dn"),
    ],
)
def test_refusals_name_the_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        parse_ldif(text, "f.ldif")
    assert "f.ldif:" in info.value.message


def test_a_bad_dn_in_a_realm_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.ldif"
    path.write_text("dn: uid=ok,dc=x\nuid: ok\n\ndn: not a dn\nuid: x\n")
    config = load_realms([{"name": "r1", "registry": {"type": "ldif", "path": str(path)}}], tmp_path)["r1"]
    with pytest.raises(ConfigError, match=r"realm 'r1': .*bad.ldif:4: bad dn"):
        config.open_registry()
