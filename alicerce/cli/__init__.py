"""The `alicerce` command: serve, set up, and manage accounts, keys, gateways and collections
from a shell, acting on the database directly (for any account: it is the operator's tool).

One module per group of commands; `refs` finds things by id or name for all of them, and
`output` prints them (the API's JSON with `--json`). Each module imports what its commands
need when they run, so `alicerce --help` loads no database, model or web stack.
"""

from __future__ import annotations

import sys

import click

from alicerce.cli.accounts import accounts
from alicerce.cli.collections import collections
from alicerce.cli.gateways import gateways
from alicerce.cli.ingest import ingest
from alicerce.cli.keys import keys
from alicerce.cli.models import models, usage
from alicerce.cli.serve import demo, init, serve

__all__ = ["main"]


@click.group(help="Alicerce: an AI gateway with an OpenAI-compatible API.")
@click.version_option(package_name="alicerce")
def main() -> None:
    pass


for command in (init, serve, demo, ingest, accounts, keys, gateways, collections, models, usage):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
