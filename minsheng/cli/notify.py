"""The notify service's deliveries: list the failed ones, make them due again."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from minsheng.cli.common import service_runtime, settings_from_env

notify_app = typer.Typer(help="The notify service's deliveries.", no_args_is_help=True)


@notify_app.command("deliveries")
def notify_deliveries(
    status: Annotated[list[str] | None, typer.Option("--status", help="Repeatable; default failed and dead.")] = None,
    channel: Annotated[str | None, typer.Option(help="wechat, sms, wecom or inbox")] = None,
    limit: int = 200,
) -> None:
    """Deliveries (masked addresses, no message bodies), newest first: by default the dead and failed ones."""
    from minsheng.runner import service_module

    ops: Any = service_module("notify", "ops")
    settings = settings_from_env()

    async def go() -> None:
        rt = service_runtime("notify", settings)
        try:
            rows = await ops.list_deliveries(rt.db, status=status or ("failed", "dead"), channel=channel, limit=limit)
        finally:
            await rt.db.dispose()
        if rows:
            typer.echo(ops.render(rows))

    asyncio.run(go())


@notify_app.command("resend")
def notify_resend(
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these deliveries; repeatable.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every failed and dead delivery.")] = False,
) -> None:
    """Make failed/dead deliveries due again (attempts reset); the running sender sends them."""
    from minsheng.runner import service_module

    if not ids and not all_:
        raise typer.BadParameter("name deliveries with --id, or pass --all")
    ops: Any = service_module("notify", "ops")
    settings = settings_from_env()

    async def go() -> int:
        rt = service_runtime("notify", settings)
        try:
            return int(await ops.resend_deliveries(rt.db, ids))
        finally:
            await rt.db.dispose()

    typer.echo(f"{asyncio.run(go())} deliveries due again")
