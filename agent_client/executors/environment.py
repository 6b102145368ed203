"""The job's environment: built from an allow-list, never inherited from the agent.

A fixed PATH; HOME, USER, LOGNAME and SHELL from the password database; then the job's
additions, minus every name on the deny list (dynamic-loader, shell-startup and
interpreter-startup variables that would run code the job did not name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_client.mapping import Account

FIXED_PATH = "/usr/local/bin:/usr/bin:/bin"
IDENTITY = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL"})
# Why: each of these makes a loader, shell or interpreter run or load code chosen by whoever
# sets it (ld.so preloads, bash startup files and exported functions, Python/Perl/Ruby/Node
# startup hooks, glibc tunables and gconv modules, IFS word splitting).
DENY_EXACT = frozenset(
    {
        "BASH_ENV", "ENV", "IFS", "CDPATH", "GLOBIGNORE", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
        "GCONV_PATH", "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "NLSPATH", "RES_OPTIONS",
        "RESOLV_HOST_CONF", "TMPDIR", "TZDIR", "PERLLIB", "RUBYLIB", "RUBYOPT", "NODE_OPTIONS", "NODE_PATH",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "SSLKEYLOGFILE", "OPENSSL_CONF",
        "OPENSSL_ENGINES", "GIT_EXEC_PATH", "GIT_CONFIG", "EDITOR", "VISUAL", "PAGER", "SUDO_ASKPASS",
    }
)  # fmt: skip
DENY_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "PYTHON", "PERL5", "MALLOC_", "GLIBC_", "LC_ALL_", "GIO_", "GTK_")


def is_denied(name: str) -> bool:
    """True for a variable the job may never set (the deny list, or an identity variable)."""
    return name in IDENTITY or name in DENY_EXACT or name.startswith(DENY_PREFIXES)


def build_environment(account: Account, additions: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The whole environment of the job, and the names of the additions that were dropped."""
    env = {
        "PATH": FIXED_PATH,
        "HOME": account.home,
        "USER": account.name,
        "LOGNAME": account.name,
        "SHELL": account.shell or "/bin/sh",
    }
    dropped: list[str] = []
    for name, value in additions.items():
        if is_denied(name):
            dropped.append(name)
        else:
            env[name] = value
    return env, sorted(dropped)
