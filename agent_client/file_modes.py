"""Strict file modes, as sshd's ``StrictModes`` checks them (sshd_config(5)).

The agent runs as root and its configuration decides who may run what as whom. So the
configuration, the mapping rules, the authorization table, the node key and the trust
bundles, and every directory above them, must be owned by root or the agent's own account
and not writable by group or others, and no component may be a symlink. Otherwise the
agent refuses to start and names the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from agent_client.errors import UnsafeFileMode


def _check_one(path: Path, owners: frozenset[int], *, is_dir: bool, private: bool) -> str | None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return f"{path}: does not exist"
    except OSError as exc:
        return f"{path}: cannot be examined: {exc.strerror}"
    # Why: a symlink can be repointed by whoever owns it or its directory; following it would
    # let that person substitute the file after we checked it.
    if stat.S_ISLNK(info.st_mode):
        return f"{path}: is a symlink"
    if is_dir and not stat.S_ISDIR(info.st_mode):
        return f"{path}: is not a directory"
    if not is_dir and not stat.S_ISREG(info.st_mode):
        return f"{path}: is not a regular file"
    if info.st_uid not in owners:
        return f"{path}: owned by uid {info.st_uid}, not root or the agent's account"
    writable_by_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    # Why: a root-owned sticky directory such as /tmp lets others create entries but never
    # rename or remove ours, so it cannot be used to swap a checked file; sshd-style checks
    # on everything below it still apply.
    if writable_by_others and not (is_dir and info.st_mode & stat.S_ISVTX and info.st_uid == 0):
        return f"{path}: is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    # Why: the node's private key authenticates the agent to the STS; anyone who can read it
    # can lease this node's jobs.
    if private and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path}: private key is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def path_problems(path: Path, *, owner_uid: int | None = None, private: bool = False) -> list[str]:
    """Every problem with ``path`` and each of its parent directories (empty when safe)."""
    owners = frozenset({0, os.geteuid() if owner_uid is None else owner_uid})
    path = Path(os.path.abspath(path))
    problems: list[str] = []
    problem = _check_one(path, owners, is_dir=False, private=private)
    if problem:
        problems.append(problem)
    for parent in path.parents:
        problem = _check_one(parent, owners, is_dir=True, private=False)
        if problem:
            problems.append(problem)
    return problems


def check_paths(paths: Iterable[Path], *, private: Iterable[Path] = (), owner_uid: int | None = None) -> list[str]:
    """One line per problem over all ``paths`` (``private`` ones must also be unreadable by others)."""
    private_set = {Path(os.path.abspath(p)) for p in private}
    seen: set[str] = set()
    lines: list[str] = []
    for path in paths:
        absolute = Path(os.path.abspath(path))
        for line in path_problems(absolute, owner_uid=owner_uid, private=absolute in private_set):
            if line not in seen:
                seen.add(line)
                lines.append(line)
    return lines


def require_safe(paths: Iterable[Path], *, private: Iterable[Path] = (), owner_uid: int | None = None) -> None:
    """Raise ``agent.file_mode`` naming the first unsafe file; the agent must not start."""
    problems = check_paths(paths, private=private, owner_uid=owner_uid)
    if problems:
        raise UnsafeFileMode(f"refusing to start: {problems[0]}", file=problems[0].split(":", 1)[0])
