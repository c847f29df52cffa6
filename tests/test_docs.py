"""The README is part of the product: these fail when it drifts from the code."""

from __future__ import annotations

import re
from pathlib import Path

from bot.cli import cli
from bot.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table_with_its_default():
    for spec in SETTINGS:
        default = f"`{spec.default}`" if spec.default else spec.unset
        assert f"| `{spec.env}` | {default} |" in README, spec.env


def test_the_readme_lists_no_setting_that_does_not_exist():
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    assert documented == {spec.env for spec in SETTINGS}


def test_ci_runs_the_readme_test_command():
    command = 'python -m pip install -e ".[test,local]" && python -m pytest'
    assert command in README
    assert command in (ROOT / ".ci" / "run").read_text()


def test_every_cli_command_is_in_the_readme_and_has_a_test():
    tests = "".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    for name, command in cli.commands.items():
        assert f"imgbot {name}" in README, name
        subcommands = getattr(command, "commands", {None: command})
        for sub in subcommands:
            invocation = f'"{name}", "{sub}"' if sub else f'"{name}"'
            assert f"run({invocation}" in tests or f'"{name}"' in tests, f"no test runs imgbot {name} {sub or ''}"


def test_the_procfile_runs_serve_worker_and_migrations():
    procfile = (ROOT / "Procfile").read_text()
    assert "web: imgbot serve" in procfile
    assert "worker: imgbot worker" in procfile
    assert "release: imgbot db upgrade" in procfile
