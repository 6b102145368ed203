"""Agent configuration validation and StrictModes-like file checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_client.config import config_from_mapping, load_agent_config
from agent_client.errors import AgentConfigInvalid, UnsafeFileMode
from agent_client.file_modes import check_paths, require_safe
from authz_tables.roles import Role

GOOD = """
[agent]
node_id = "node1"
realm = "cellB"
sts_url = "https://sts.test/"
trusted_realms = ["jobmgr"]
authgroups = ["payroll"]
executor = "sudo"

[job_types]
run = "operator"
inventory = "monitor"

[mapping]
fallback = "nobody"
equivalency = ["cellB"]

[[mapping.rules]]
group = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"
account = "batch"
primary_group = "batch"
load_profile = true

[[mapping.rules]]
role = "administrator"
account = "admin_jobs"

[trust]
max_age = 600

[limits]
nproc = 64
cpu_seconds = 10
"""


def _write(directory: Path, text: str, name: str = "agent.toml", mode: int = 0o600) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(mode)
    return path


def test_good_config_loads(tmp_path: Path) -> None:
    config = load_agent_config(_write(tmp_path / "etc", GOOD), environ={})
    assert config.node_id == "node1" and config.sts_url == "https://sts.test"
    assert config.realms == {"cellB", "jobmgr"} and config.trusted_realms == {"jobmgr"}
    assert config.job_types == {"run": Role.OPERATOR, "inventory": Role.MONITOR}
    assert [r.kind for r in config.mapping.rules] == ["group", "role"]
    assert config.mapping.rules[0].load_profile and config.mapping.fallback == "nobody"
    assert config.limits.rlimits == {"nproc": 64, "cpu_seconds": 10}
    assert config.key_file == tmp_path / "etc" / "node.key"
    assert config.issuer("jobmgr") == "https://sts.test/realms/jobmgr"


def test_wait_url_is_optional_and_defaults_to_none(tmp_path: Path) -> None:
    assert load_agent_config(_write(tmp_path / "a", GOOD), environ={}).wait_url is None
    text = GOOD.replace(
        'sts_url = "https://sts.test/"', 'sts_url = "https://sts.test/"\nwait_url = "https://sts.test:8081/"'
    )
    assert load_agent_config(_write(tmp_path / "b", text), environ={}).wait_url == "https://sts.test:8081"


def test_poll_wait_reaches_55_seconds(tmp_path: Path) -> None:
    # A large fleet re-waits less often with a long period (README, "Sizing for N agents").
    text = GOOD.replace('executor = "sudo"', 'executor = "sudo"\npoll_wait = 55')
    assert load_agent_config(_write(tmp_path, text), environ={}).poll_wait == 55


def test_sts_url_environment_override(tmp_path: Path) -> None:
    config = load_agent_config(_write(tmp_path, GOOD), environ={"JOBSTS_AGENT_STS_URL": "https://other:8443"})
    assert config.sts_url == "https://other:8443"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (('executor = "sudo"', 'executor = "su"'), "agent.executor"),
        (('run = "operator"', 'run = "superuser"'), "job_types.run"),
        (('account = "batch"', 'account = "0"'), "mapping.rules[0].account"),
        (('account = "batch"', 'account = "#-1"'), "mapping.rules[0].account"),
        (('fallback = "nobody"', 'fallback = "-rf"'), "mapping.fallback"),
        (('equivalency = ["cellB"]', 'equivalency = ["cellC"]'), "mapping.equivalency"),
        (("max_age = 600", "max_age = 5"), "trust.max_age"),
        (("nproc = 64", "nproc = -1"), "limits.nproc"),
        (("[trust]", "[trust]\nbogus = 1"), "trust.bogus"),
        (('node_id = "node1"', 'node_id = "../x"'), "agent.node_id"),
        (('sts_url = "https://sts.test/"', 'sts_url = "file:///etc/passwd"'), "agent.sts_url"),
        (('sts_url = "https://sts.test/"', 'sts_url = "https://sts.test/"\nwait_url = "sts:8081"'), "agent.wait_url"),
        (('executor = "sudo"', 'executor = "sudo"\npoll_wait = 56'), "agent.poll_wait"),
    ],
)
def test_config_mistakes_are_one_line_naming_the_field(tmp_path: Path, edit: tuple[str, str], field: str) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    with pytest.raises(AgentConfigInvalid) as caught:
        load_agent_config(_write(tmp_path, text), environ={})
    assert caught.value.code == "agent.config"
    assert field in caught.value.message and "\n" not in caught.value.message
    assert str(tmp_path) in caught.value.message


def test_no_job_types_means_no_defaults() -> None:
    with pytest.raises(AgentConfigInvalid, match="job_types"):
        config_from_mapping({"agent": {"node_id": "n", "realm": "r", "sts_url": "http://s"}}, Path("/x.toml"), {})


def test_rule_needs_exactly_one_matcher(tmp_path: Path) -> None:
    text = GOOD.replace('role = "administrator"', 'role = "administrator"\nrealm = "jobmgr"')
    with pytest.raises(AgentConfigInvalid, match="exactly one"):
        load_agent_config(_write(tmp_path, text), environ={})


def test_bad_toml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigInvalid, match="not valid TOML"):
        load_agent_config(_write(tmp_path, "[agent\n"), environ={})


# --- file modes ---------------------------------------------------------------------------


def test_safe_files_pass(tmp_path: Path) -> None:
    config = _write(tmp_path / "etc", GOOD)
    key = _write(tmp_path / "etc", "key", "node.key", 0o600)
    assert check_paths([config, key], private=[key]) == []
    require_safe([config, key], private=[key])


def test_group_writable_config_is_refused_by_name(tmp_path: Path) -> None:
    config = _write(tmp_path / "etc", GOOD, mode=0o620)
    with pytest.raises(UnsafeFileMode) as caught:
        require_safe([config])
    assert caught.value.code == "agent.file_mode"
    assert str(config) in caught.value.message and "writable" in caught.value.message


def test_other_writable_parent_directory_is_refused(tmp_path: Path) -> None:
    config = _write(tmp_path / "etc", GOOD)
    (tmp_path / "etc").chmod(0o777)
    try:
        problems = check_paths([config])
    finally:
        (tmp_path / "etc").chmod(0o700)
    assert problems == [f"{tmp_path / 'etc'}: is writable by group or others (mode 0777)"]


def test_symlinked_config_is_refused(tmp_path: Path) -> None:
    real = _write(tmp_path / "etc", GOOD)
    link = tmp_path / "etc" / "link.toml"
    link.symlink_to(real)
    with pytest.raises(UnsafeFileMode, match="is a symlink"):
        require_safe([link])


def test_symlinked_parent_directory_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "real", GOOD)
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    problems = check_paths([tmp_path / "alias" / "agent.toml"])
    assert f"{tmp_path / 'alias'}: is a symlink" in problems


def test_config_loader_keeps_symlinks_visible(tmp_path: Path) -> None:
    _write(tmp_path / "real", GOOD)
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    config = load_agent_config(tmp_path / "alias" / "agent.toml", environ={})
    assert config.path == tmp_path / "alias" / "agent.toml"
    assert any("symlink" in p for p in check_paths(config.protected_files()))


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = _write(tmp_path / "etc", "key", "node.key", 0o644)
    assert check_paths([key], private=[key]) == [f"{key}: private key is readable by group or others (mode 0644)"]
    assert check_paths([key]) == []


@pytest.mark.root
def test_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    config = _write(tmp_path / "etc", GOOD)
    os.chown(config, 4242, -1)
    assert check_paths([config]) == [f"{config}: owned by uid 4242, not root or the agent's account"]


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    assert check_paths([tmp_path / "nope"]) == [f"{tmp_path / 'nope'}: does not exist"]


def test_readme_agent_toml_example_is_valid() -> None:
    import tomllib

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = text.split("An annotated `agent.toml`:")[1].split("```toml")[1].split("```")[0]
    config = config_from_mapping(tomllib.loads(block), Path("/etc/jobsts-agent/agent.toml"), {})
    assert [rule.kind for rule in config.mapping.rules] == ["access_id", "group", "realm"]
