"""Master-key rotation: online, in batches, resumable after a crash, no job lost or refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from realms.console import cli
from sts import create_app
from sts.config import StsConfig
from sts.jobs.models import Job
from sts.keys.master_key import MasterKey, MasterKeyMismatch, create_key_file
from sts.keys.master_rotation import rotate_master_key, sealing_status
from sts.keys.models import SigningKey
from tests.jobs.conftest import World, build_world

pytestmark = pytest.mark.db


class Crash(Exception):
    """Stands for the rotation process dying after its first committed batch."""


def _world(config: StsConfig) -> World:
    app = create_app(config)
    app.config.update(TESTING=True)
    services = app.extensions["jobsts"]
    return World(app, app.test_client(), services)


def _every_row_opens(key: MasterKey, world: World) -> None:
    with world.services.db.session() as session:
        for row in session.scalars(select(SigningKey).where(SigningKey.private_key.is_not(None))):
            key.decrypt(row.private_key, f"jobsts/signing-key/{row.realm}/{row.kid}".encode())  # type: ignore[arg-type]
        for job in session.scalars(select(Job)):
            key.decrypt(job.token_ciphertext, job.id.encode("ascii"))


def test_a_crashed_rotation_leaves_every_secret_readable_and_resumes(tmp_path: Path, database_url: str) -> None:
    old = build_world(tmp_path, database_url)
    for _ in range(5):
        old.submit()
    old_file = old.services.config.master_key_file
    assert old_file is not None
    new_file = tmp_path / "master-new.key"
    create_key_file(new_file)
    old.services.close()
    rotating = replace(old.services.config, master_key_file=new_file, fallback_master_key_files=(old_file,))
    world = _world(rotating)
    try:
        calls = []

        def crash_after_first_batch(name: str, done: int) -> None:
            calls.append((name, done))
            raise Crash

        with pytest.raises(Crash):
            rotate_master_key(
                world.services.db, world.services.master_key, batch_size=1, progress=crash_after_first_batch
            )
        status = sealing_status(world.services.db, world.services.master_key)
        assert status["signing keys"][0] == 1 and status["signing keys"][1] >= 1  # half done
        _every_row_opens(world.services.master_key, world)
        assert world.lease() is not None  # the STS works during the rotation
        world.submit()  # and writes under the new key
        report = rotate_master_key(world.services.db, world.services.master_key, batch_size=2)
        assert report.resealed["job tokens"] == 5 and report.resealed["signing keys"] >= 1
        assert all(left == 0 for _, left in sealing_status(world.services.db, world.services.master_key).values())
    finally:
        world.services.close()
    done = _world(replace(rotating, fallback_master_key_files=()))
    try:
        _every_row_opens(MasterKey.load(done.services.config), done)
        leased = [done.lease() for _ in range(5)]
        assert all(job is not None for job in leased)
    finally:
        done.services.close()
    with pytest.raises(MasterKeyMismatch):
        create_app(replace(rotating, master_key_file=old_file, fallback_master_key_files=()))


def test_the_commands_generate_rotate_and_report(tmp_path: Path, database_url: str) -> None:
    world = build_world(tmp_path, database_url)
    world.submit()
    world.services.close()
    config_file = tmp_path / "sts.toml"
    runner = CliRunner()
    generated = runner.invoke(cli, ["master-key", "generate", str(tmp_path / "next.key")])
    assert generated.exit_code == 0, generated.output
    assert (tmp_path / "next.key").stat().st_mode & 0o777 == 0o600
    text = config_file.read_text(encoding="utf-8")
    config_file.write_text(
        text.replace(
            'master_key_file = "master.key"',
            'master_key_file = "next.key"\nfallback_master_key_files = ["master.key"]',
        ),
        encoding="utf-8",
    )
    before = runner.invoke(cli, ["master-key", "status", "--config", str(config_file)])
    assert before.exit_code == 0 and "run jobsts master-key rotate" in before.output
    rotated = runner.invoke(cli, ["master-key", "rotate", "--config", str(config_file)])
    assert rotated.exit_code == 0 and "job tokens: 1 resealed" in rotated.output, rotated.output
    after = runner.invoke(cli, ["master-key", "status", "--config", str(config_file)])
    assert "the fallback keys can be removed" in after.output
