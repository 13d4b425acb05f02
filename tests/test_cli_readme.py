"""The README's command-line section matches the CLI: every command is listed, with every
option its ``--help`` shows, and the README lists no option the command does not have."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from aicmo.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{path} "))
        else:
            found[path] = command
    return found


COMMANDS = _commands(main)


def _cli_block() -> str:
    """Every plain code block of the README's "Command line" section (its subsections too)."""
    text = README.read_text()
    start = text.index("## Command line")
    section = text[start : text.index("\n## ", start + 1)]
    blocks: list[str] = []
    fence: str | None = None  # the opening fence of the block being read
    for line in section.splitlines():
        if line.startswith("```"):
            fence = line if fence is None else None
        elif fence == "```":
            blocks.append(line)
    return "\n".join(blocks)


DESCRIPTION_COLUMN = 49
"""Where the README's descriptions start; what is left of it is usage."""


def _usage(line: str) -> str:
    """``line`` without its description (text from the description column on, after a space)."""
    cut = DESCRIPTION_COLUMN - 1
    return line[:cut] if len(line) > cut and line[cut - 1] == " " else line


def _entries() -> dict[str, str]:
    """README usage per command: its usage line(s), up to the next ``aicmo`` line."""
    entries: dict[str, str] = {}
    current = None
    for line in _cli_block().splitlines():
        if line.startswith("aicmo "):
            words = line.split()[1:3]
            names = [" ".join(words[:n]) for n in (2, 1)]
            current = next((n for n in names if n in COMMANDS), None)
            if current is not None:
                entries[current] = ""
        if current is not None:
            entries[current] += _usage(line) + "\n"
    return entries


def test_every_command_is_in_the_readme() -> None:
    assert sorted(_entries()) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_readme_lists_every_option_of_the_command(name: str) -> None:
    usage = _entries()[name]
    command = COMMANDS[name]
    listed = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", usage))
    options = {
        flag for param in command.params if isinstance(param, click.Option) for flag in param.opts
    }
    # Each option is named at least by one of its flags; no flag is listed that it lacks.
    for param in command.params:
        if isinstance(param, click.Option):
            assert listed & set(param.opts), (name, param.opts, usage)
    assert listed <= options, (name, sorted(listed - options))
