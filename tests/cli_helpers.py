"""What the CLI tests share: a fresh SQLite database in the environment, and a runner that
shows what a command printed whenever it did not do what the test expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from alicerce.cli import main
from tests.conftest import create_database


def cli_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of commands on a database of their own, made as `alicerce init` would."""
    values = {
        "ALICERCE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "ALICERCE_SECRET_KEY": "cli-secret",
        "ALICERCE_ALLOW_PRIVATE_UPSTREAMS": "true",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALICERCE_ROOT_KEY", raising=False)
    monkeypatch.delenv("ALICERCE_CONFIG", raising=False)
    create_database(values["ALICERCE_DATABASE_URL"])
    return values


class Cli:
    """`alicerce` run in this process (click's runner) against the environment's database."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def run(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(main, list(args), input=input)

    def ok(self, *args: str, input: str | None = None) -> str:
        """What the command printed on standard output; it must succeed."""
        result = self.run(*args, input=input)
        assert result.exit_code == 0, result.output
        return result.stdout

    def json(self, *args: str, input: str | None = None) -> Any:
        """The command's `--json` output, parsed."""
        return json.loads(self.ok(*args, "--json", input=input))

    def fails(self, *args: str, input: str | None = None) -> str:
        """What the failing command printed (standard output and error)."""
        result = self.run(*args, input=input)
        assert result.exit_code != 0, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )  # a message, never a traceback
        return result.output
