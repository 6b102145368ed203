"""Run a command under the parts of a systemd unit's sandbox that work without systemd as PID 1.

Usage (as root, by the system python3, which has Debian's python3-seccomp):
``/usr/bin/python3 unit_sandbox.py SPEC.json -- COMMAND...``. The spec is written by
tests/docker/systemd_units.py from a unit file; this file imports nothing of the project.

What it applies, in the order systemd's executor applies it:
* ``ProtectProc=invisible`` / ``ProcSubset=pid``: a private mount namespace with a new procfs
  mounted ``hidepid=invisible,subset=pid``;
* ``CapabilityBoundingSet=``: every other capability is dropped from the bounding set, so after
  ``execve`` a root process holds exactly these (capabilities(7));
* ``User=``/``Group=``: setgroups, setgid, setuid;
* ``NoNewPrivileges=yes``: ``PR_SET_NO_NEW_PRIVS``;
* ``SystemCallFilter=`` (the expanded allow list), ``SystemCallErrorNumber=``,
  ``RestrictAddressFamilies=`` (``socket(2)`` allowed for the listed families only) and
  ``MemoryDenyWriteExecute=`` (no writable+executable ``mmap``, no executable ``mprotect``,
  ``pkey_mprotect`` or ``shmat``), as one seccomp filter, with libseccomp as systemd uses it;
* ``UMask=``.
Not applied: mount-namespace settings that hide or freeze paths (ProtectSystem, ProtectHome,
PrivateTmp, PrivateDevices, ReadOnlyPaths), PrivateUsers, and the kernel-tunable protections.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
from typing import Any

import seccomp  # Debian's python3-seccomp, importable by /usr/bin/python3

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]  # fmt: skip

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def private_proc() -> None:
    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    check(libc.mount(b"proc", b"/proc", b"proc", 0, b"hidepid=invisible,subset=pid"), "mount proc")


def drop_bounding_set(keep: set[str], last: int) -> None:
    for number in range(last + 1):
        name = CAPABILITIES[number] if number < len(CAPABILITIES) else f"cap_{number}"
        if name not in keep:
            check(libc.prctl(PR_CAPBSET_DROP, number, 0, 0, 0), f"drop {name}")


def syscall_filter(spec: dict[str, Any]) -> None:
    errno_value = int(spec.get("errno") or 1)
    allowed = set(spec["allow"])
    families = spec.get("families")
    conditional: dict[str, list[object]] = {}
    if families is not None:
        allowed.discard("socket")
        conditional["socket"] = [seccomp.Arg(0, seccomp.EQ, getattr(socket, name)) for name in families]
    if spec.get("mdwe"):
        for name, mask in (
            ("mmap", PROT_WRITE | PROT_EXEC),
            ("mprotect", PROT_EXEC),
            ("pkey_mprotect", PROT_EXEC),
            ("shmat", SHM_EXEC),
        ):
            if name in allowed:
                allowed.discard(name)
                values = [0, PROT_WRITE, PROT_EXEC] if name == "mmap" else [0]
                conditional[name] = [seccomp.Arg(2, seccomp.MASKED_EQ, mask, value) for value in values]
    rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno_value))
    for name in sorted(allowed):
        try:
            rules.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError):
            pass  # not a syscall of this architecture (e.g. the *32 variants)
    for name, arguments in conditional.items():
        for argument in arguments:
            rules.add_rule(seccomp.ALLOW, name, argument)
    rules.load()


def main() -> None:
    spec_path, separator, *command = sys.argv[1:]
    assert separator == "--" and command, __doc__
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
        last_cap = int(handle.read())  # before the private /proc hides /proc/sys
    if spec.get("private_proc"):
        private_proc()
    drop_bounding_set(set(spec.get("keep_caps", [])), last_cap)
    if "uid" in spec:
        os.setgroups(spec.get("groups", []))
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])
    if spec.get("no_new_privs"):
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    if spec.get("allow") is not None:
        syscall_filter(spec)
    if spec.get("umask") is not None:
        os.umask(int(spec["umask"], 8))
    os.execvp(command[0], command)  # noqa: S606 (a fixed argv, no shell)


if __name__ == "__main__":
    main()
