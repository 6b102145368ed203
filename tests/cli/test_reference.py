"""The README's ``## CLI`` block is the CLI reference: every line names real commands and options,
and every command and every option of the tree appears in it."""

from __future__ import annotations

import click
import pytest

from realms.console import cli
from tests.cli.reference import check_cli_line, cli_lines, undocumented


def test_every_line_of_the_cli_reference_names_real_commands_and_options() -> None:
    covered: set[str] = set()
    for line in cli_lines():
        covered.update(check_cli_line(line))
    top = set(cli.list_commands(click.Context(cli)))
    assert top <= {path.split(" ")[0] for path in covered}, f"not in the CLI reference: {top - covered}"


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    missing = undocumented(cli_lines())
    assert not missing, "\n".join(missing)


def test_the_cli_reference_check_catches_a_wrong_option() -> None:
    with pytest.raises(AssertionError, match="has no --colour"):
        check_cli_line("jobsts login --url URL --colour")
    with pytest.raises(AssertionError, match="no such command"):
        check_cli_line("jobsts node frobnicate NODE")


def test_the_cli_reference_check_catches_a_missing_option() -> None:
    lines = [line for line in cli_lines() if not line.startswith("jobsts logout")]
    lines.append("jobsts logout                                     forget the stored tokens")
    assert "jobsts logout: --url is not in the CLI reference" in undocumented(lines)
    assert "jobsts demo: not in the CLI reference" in undocumented([line for line in lines if " demo " not in line])
