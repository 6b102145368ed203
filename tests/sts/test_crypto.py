"""The master key: file mode, environment, AES-GCM blobs bound to their place."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from sts import create_app
from sts.config import StsConfig
from sts.keys.master_key import (
    MasterKey,
    MasterKeyError,
    MasterKeyInsecure,
    MasterKeyMismatch,
    create_key_file,
    encode_key,
)
from tests.sts.conftest import make_config


def test_key_file_is_created_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    with pytest.raises(MasterKeyError, match="already exists"):
        create_key_file(path)
    assert path.read_bytes() == before
    assert MasterKey.from_file(path).decrypt(MasterKey.from_file(path).encrypt(b"x", b"a"), b"a") == b"x"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_loose_key_file_is_refused_naming_file_and_mode(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    create_key_file(path)
    os.chmod(path, mode)
    with pytest.raises(MasterKeyInsecure) as caught:
        MasterKey.from_file(path)
    assert str(path) in caught.value.message and f"{mode:04o}" in caught.value.message


def test_service_refuses_to_start_with_a_loose_key_file(tmp_path: Path, database_url: str) -> None:
    config = make_config(tmp_path, database_url)
    assert config.master_key_file is not None
    os.chmod(config.master_key_file, 0o644)
    with pytest.raises(MasterKeyInsecure):
        create_app(config)


def test_environment_key(tmp_path: Path, database_url: str) -> None:
    key = encode_key(os.urandom(32))
    config: StsConfig = replace(make_config(tmp_path, database_url), master_key_file=None, master_key_env=key)
    app = create_app(config)
    app.extensions["jobsts"].close()
    with pytest.raises(MasterKeyError, match="32 bytes"):
        MasterKey.load(replace(config, master_key_env=encode_key(b"short")))


def test_blobs_are_versioned_random_and_bound_to_aad() -> None:
    key = MasterKey.generate()
    one, two = key.encrypt(b"secret", b"row-1"), key.encrypt(b"secret", b"row-1")
    assert one != two and one[0] == 1 and b"secret" not in one
    assert key.decrypt(one, b"row-1") == b"secret"
    with pytest.raises(MasterKeyMismatch):
        key.decrypt(one, b"row-2")
    with pytest.raises(MasterKeyMismatch):
        MasterKey.generate().decrypt(one, b"row-1")
    with pytest.raises(MasterKeyMismatch):
        key.decrypt(b"\x02" + one[1:], b"row-1")
