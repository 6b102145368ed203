"""The README's CLI reference, read against the real command tree.

``check_cli_line`` walks one line of the ``## CLI`` block (``jobsts a|b c [--opt VALUE]``) and
returns, for each command path it names, the options it documents; it fails on a command or an
option that does not exist. ``undocumented`` lists the commands and options the block leaves out.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from realms.console import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def section(text: str, title: str) -> str:
    """The body of the ``## title`` (or ``### title``) section, up to the next heading of that level."""
    level = title.split(" ", 1)[0]
    start = text.index(f"\n{title}\n")
    end = text.find(f"\n{level} ", start + len(title) + 2)
    return text[start : end if end != -1 else len(text)]


def code_blocks(text: str, language: str = "") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def command_at(path: list[str] | tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group), f"jobsts {' '.join(path)}: {name!r} under a plain command"
        with click.Context(command) as ctx:
            found = command.get_command(ctx, name)
        assert found is not None, f"jobsts {' '.join(path)}: no such command"
        command = found
    return command


def options_of(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def cli_lines() -> list[str]:
    block = code_blocks(section(README.read_text(encoding="utf-8"), "## CLI"))[0]
    return [line for line in block.splitlines() if line.startswith("jobsts ")]


def check_cli_line(line: str) -> dict[str, set[str]]:
    """The command paths ``line`` names, each with the options it documents (asserting both exist)."""
    usage = re.split(r"\s{2,}", line)[0]  # the description follows two or more spaces
    paths: list[list[str]] = [[]]
    documented: dict[str, set[str]] = {"": set()}
    for token in usage.split()[1:]:
        if token == "--":
            break
        word = token.strip("[]")
        if word.startswith("-"):
            for option in word.split("|"):
                for path in paths:
                    assert option in options_of(command_at(path)), f"{line!r}: jobsts {' '.join(path)} has no {option}"
                    documented[" ".join(path)].add(option)
            continue
        names = word.split("|")
        if all(re.fullmatch(r"[a-z][a-z-]*", name) for name in names) and isinstance(command_at(paths[0]), click.Group):
            paths = [[*path, name] for path in paths for name in names]
            for path in paths:
                command_at(path)
                documented.setdefault(" ".join(path), set())
    return documented


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below ``group`` (groups included), walked through click's own API."""
    context = click.Context(group, info_name="jobsts")
    found: list[tuple[str, ...]] = [prefix]
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, f"jobsts {' '.join(prefix)} {name}: listed but not loadable"
        if isinstance(command, click.Group):
            found += command_paths(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def undocumented(lines: list[str]) -> list[str]:
    """Every command the reference never names, and every option of a command it never shows."""
    documented: dict[str, set[str]] = {}
    for line in lines:
        for named, options in check_cli_line(line).items():
            documented.setdefault(named, set()).update(options)
    missing = []
    for path in command_paths(cli):
        name = " ".join(path)
        command = command_at(path)
        if name not in documented and not isinstance(command, click.Group):
            missing.append(f"jobsts {name}: not in the CLI reference")
            continue
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            spellings = {*param.opts, *param.secondary_opts}
            if "--help" in spellings or spellings & documented.get(name, set()):
                continue
            missing.append(f"jobsts {name}: {'/'.join(sorted(spellings))} is not in the CLI reference")
    return missing
