"""docs/operations.md's SQLite backup and restore, run as written (bash) against a serving STS:
the restored STS, in a fresh directory, still accepts the old access and refresh tokens, still
has the job and the node, and signs with the same realm keys; without the master key it refuses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from authz_tables.roles import Role
from realms.identity.access_id import AccessId
from sts.keys.master_key import MasterKeyMismatch, create_key_file
from tests.cli.embedded_sts import EmbeddedSts, write_sts_files
from tests.cli.reference import code_blocks, section

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BASE_URL = "http://sts.example.internal:8080"
OPERATORS = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"


def guide_block(title: str) -> str:
    [block] = code_blocks(section(GUIDE.read_text(encoding="utf-8"), title), "sh")
    return block


def run_block(block: str, **variables: Path) -> None:
    environ = {**os.environ, **{name: str(value) for name, value in variables.items()}}
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=environ, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_restored_sts_keeps_tokens_jobs_and_keys(tmp_path: Path) -> None:
    old_dir, backup, new_dir = tmp_path / "sts", tmp_path / "backup", tmp_path / "restored"
    old_dir.mkdir()
    backup.mkdir()
    old = EmbeddedSts(write_sts_files(old_dir, BASE_URL))
    try:
        old.app.extensions["jobsts"].authz.grant(AccessId.parse(OPERATORS), Role.OPERATOR, changed_by="test")
        old.register_node("node1", tmp_path / "node.key")
        form = {"grant_type": "password", "username": "john", "password": "john-password"}
        tokens = old.http.post("/realms/jobmgr/token", data=form).json()
        body = {"node": "node1", "type": "run", "spec": {"argv": ["/usr/bin/id"]}}
        job = old.call("POST", "/api/v1/jobs", tokens["access_token"], body)
        keys = old.http.get("/realms/jobmgr/jwks").json()
        run_block(guide_block("## Back up (SQLite)"), STS_DIR=old_dir, BACKUP=backup)  # while it serves
    finally:
        old.close()
    shutil.rmtree(old_dir)  # the restore needs nothing of the old directory

    run_block(guide_block("## Restore (SQLite)"), BACKUP=backup, NEW_DIR=new_dir)
    assert (new_dir / "master.key").stat().st_mode & 0o777 == 0o600
    restored = EmbeddedSts(new_dir / "sts.toml")
    try:
        assert restored.http.get("/realms/jobmgr/jwks").json() == keys
        again = restored.call("GET", f"/api/v1/jobs/{job['id']}", tokens["access_token"])  # the old token
        assert again["id"] == job["id"] and again["state"] == "queued" and again["node"] == "node1"
        refreshed = restored.http.post(
            "/realms/jobmgr/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        admin = restored.login("admin")
        assert [node["id"] for node in restored.call("GET", "/api/v1/nodes", admin)["nodes"]] == ["node1"]
        fresh = restored.call("POST", "/api/v1/jobs", refreshed.json()["access_token"], body)
        assert fresh["state"] == "queued"
    finally:
        restored.close()


def test_a_backup_without_its_master_key_is_refused(tmp_path: Path) -> None:
    old_dir, backup = tmp_path / "sts", tmp_path / "backup"
    old_dir.mkdir()
    backup.mkdir()
    EmbeddedSts(write_sts_files(old_dir, BASE_URL)).close()
    run_block(guide_block("## Back up (SQLite)"), STS_DIR=old_dir, BACKUP=backup)
    (backup / "master.key").unlink()
    create_key_file(backup / "master.key")  # another key: the realm keys cannot be opened
    run_block(guide_block("## Restore (SQLite)"), BACKUP=backup, NEW_DIR=tmp_path / "restored")
    with pytest.raises(MasterKeyMismatch):
        EmbeddedSts(tmp_path / "restored" / "sts.toml").close()
