"""``<NAME>_FILE``: a secret-bearing variable read from the file it names (container secrets)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from realms.env_secrets import read_env
from realms.errors import ConfigError
from sts.config import sts_config_from_mapping


def test_the_file_variant_is_read_without_its_final_newline(tmp_path: Path) -> None:
    secret = tmp_path / "db_url"
    secret.write_text("postgresql+psycopg://jobsts:s3cret@db/jobsts\n")
    assert read_env("JOBSTS_DATABASE_URL", {"JOBSTS_DATABASE_URL_FILE": str(secret)}) == (
        "postgresql+psycopg://jobsts:s3cret@db/jobsts"
    )
    assert read_env("JOBSTS_DATABASE_URL", {"JOBSTS_DATABASE_URL": "sqlite:///x.db"}) == "sqlite:///x.db"
    assert read_env("JOBSTS_DATABASE_URL", {}) is None


@pytest.mark.parametrize("problem", ["both", "missing", "empty"])
def test_a_bad_file_variant_is_one_config_error(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "secret"
    if problem != "missing":
        path.write_text("" if problem == "empty" else "value")
    environ = {"JOBSTS_BASE_URL_FILE": str(path)}
    if problem == "both":
        environ["JOBSTS_BASE_URL"] = "http://x"
    with pytest.raises(ConfigError) as raised:
        read_env("JOBSTS_BASE_URL", environ)
    assert "JOBSTS_BASE_URL" in raised.value.message


def test_the_sts_config_takes_its_overrides_from_files(tmp_path: Path) -> None:
    """The quick start's own configuration, with base_url and database_url from secret files."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    (tmp_path / "base_url").write_text("https://sts.example\n")
    (tmp_path / "db").write_text(f"sqlite:///{tmp_path / 'other.db'}\n")
    environ = {"JOBSTS_BASE_URL_FILE": str(tmp_path / "base_url"), "JOBSTS_DATABASE_URL_FILE": str(tmp_path / "db"),
               "JOBSTS_MASTER_KEY_FILE": str(tmp_path / "master.key")}  # fmt: skip
    data = tomllib.loads((examples / "sts.toml").read_text(encoding="utf-8"))
    config = sts_config_from_mapping(data, examples, environ)
    assert config.base_url == "https://sts.example"
    assert config.database_url == f"sqlite:///{tmp_path / 'other.db'}"
    assert config.master_key_file == tmp_path / "master.key"
