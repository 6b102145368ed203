"""What ``jobsts demo`` writes: two LDIF realms, the STS configuration and the agents' configurations."""

from __future__ import annotations

import os
import pwd

from realms.registries.ldif.password_hashes import hash_password

SUFFIXES = {"jobmgr": "dc=jobmgr,dc=example", "cellB": "dc=cellb,dc=example"}
USERS = {"jobmgr": ("admin", "john", "user1", "user2"), "cellB": ("john", "bob")}
GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "jobmgr": {"operators": ("john", "user1", "user2"), "jm-admins": ("admin",)},
    "cellB": {"cell-ops": ("bob",)},
}


def realm_ldif(realm: str) -> str:
    """A small directory for ``realm``: users ``<uid>`` with password ``<uid>-password``, and groups."""
    suffix = SUFFIXES[realm]
    top = suffix.split(",")[0].split("=")[1]
    entries = [f"dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: {top}\no: {realm}"]
    entries += [f"dn: ou={ou},{suffix}\nobjectClass: organizationalUnit\nou: {ou}" for ou in ("people", "groups")]
    for uid in USERS[realm]:
        entries.append(
            f"dn: uid={uid},ou=people,{suffix}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n"
            f"sn: {uid}\ndisplayName: {uid} ({realm})\nuserPassword: {hash_password(f'{uid}-password')}"
        )
    for name, members in GROUPS[realm].items():
        lines = [f"dn: cn={name},ou=groups,{suffix}", "objectClass: groupOfNames", f"cn: {name}"]
        entries.append("\n".join(lines + [f"member: uid={uid},ou=people,{suffix}" for uid in members]))
    return "version: 1\n\n" + "\n\n".join(entries) + "\n"


def sts_toml(base_url: str) -> str:
    lines = [
        "[sts]",
        f'base_url = "{base_url}"',
        'database_url = "sqlite:///jobsts.db"',
        'master_key_file = "master.key"',
        'bootstrap_admins = ["user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"]',
    ]
    for realm, suffix in SUFFIXES.items():
        lines += [
            "",
            "[[realms]]",
            f'name = "{realm}"',
            "[realms.registry]",
            'type = "ldif"',
            f'path = "realms/{realm}.ldif"',
            f'user_base = "ou=people,{suffix}"',
            f'group_base = "ou=groups,{suffix}"',
        ]
    return "\n".join(lines) + "\n"


def local_account() -> tuple[str, str]:
    """The account demo jobs run as, and the executor: ourselves, or ``nobody`` when we are root."""
    if os.geteuid() == 0:
        # Why: as root the demo never runs jobs as root; it drops to the unprivileged ``nobody``.
        return "nobody", "setuid"
    return pwd.getpwuid(os.getuid()).pw_name, "self"


def agent_toml(node_id: str, realm: str, base_url: str, trusted: list[str], account: str, executor: str) -> str:
    quoted = ", ".join(f'"{name}"' for name in trusted)
    lines = [
        "[agent]",
        f'node_id = "{node_id}"',
        f'realm = "{realm}"',
        f'sts_url = "{base_url}"',
        f'executor = "{executor}"',
        f"trusted_realms = [{quoted}]",
        "poll_wait = 1",
        "",
        "[job_types]",
        'run = "operator"',
        'inventory = "monitor"',
        "",
        "[mapping]",
        'fallback = "deny"',
    ]
    for name in [realm, *trusted]:
        lines += ["", "[[mapping.rules]]", f'realm = "{name}"', f'account = "{account}"']
    return "\n".join(lines) + "\n"
