"""The ``minsheng`` command: one module per command group; this one puts them together."""

from __future__ import annotations

import typer

from minsheng.cli import servers
from minsheng.cli.contracts import contracts_app
from minsheng.cli.dlq import dlq_app
from minsheng.cli.identity import admin_app, keys_app, token
from minsheng.cli.migrations import makemigrations, migrate
from minsheng.cli.notify import notify_app
from minsheng.cli.outbox import outbox_app
from minsheng.cli.photos import photos_app
from minsheng.topics import cli as topics_cli

app = typer.Typer(help="Minsheng 民生 — grassroots-governance backend.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
app.add_typer(dlq_app, name="dlq")
app.add_typer(contracts_app, name="contracts")
app.add_typer(notify_app, name="notify")
app.add_typer(admin_app, name="admin")
app.add_typer(keys_app, name="keys")
app.add_typer(topics_cli, name="topics")
app.add_typer(photos_app, name="photos")
app.command()(servers.run)
app.command()(servers.serve)
app.command()(migrate)
app.command()(makemigrations)
app.command()(token)
app.command("dev-cluster")(servers.dev_cluster_cmd)
