"""`lantern --help` lists every command with its own short help, without importing the
detector (which `replay` needs and every other command can do without)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from lantern.cli import main


def test_the_command_list_is_the_one_click_makes_from_the_commands_themselves() -> None:
    ctx = click.Context(main)
    # every command imported, listed by click's own Group
    commands = [main.get_command(ctx, name) for name in main.list_commands(ctx)]
    plain = click.Group("lantern", commands=[c for c in commands if c is not None])
    for width in (50, 80, 200):
        ours, theirs = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
        main.format_commands(ctx, ours)
        plain.format_commands(click.Context(plain), theirs)
        assert ours.getvalue() == theirs.getvalue()
    listed = CliRunner().invoke(main, ["--help"]).output
    for name in ("replay", "serve", "token", "user", "worker"):
        assert f"\n  {name} " in listed


@pytest.mark.parametrize("args", [["--help"], ["user", "--help"]])
def test_help_does_not_import_the_detector(args: list[str]) -> None:
    code = (
        "import sys, json\n"
        "from lantern.cli import main\n"
        f"main({args!r}, prog_name='lantern', standalone_mode=False)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('lantern.detect', "
        "'statsmodels', 'scipy', 'pandas')))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    help_text, _, imported = out.rstrip().rpartition("\n")
    assert "Usage: lantern" in help_text
    assert json.loads(imported) == []
