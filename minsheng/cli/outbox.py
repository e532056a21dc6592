"""The transactional outbox: its status, and re-sending what the broker lost."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from minsheng.cli.common import ServiceArg, parse_since, service_names, service_runtime, settings_from_env

outbox_app = typer.Typer(help="The transactional outbox.", no_args_is_help=True)


@outbox_app.command("status")
def outbox_status_cmd(service: ServiceArg = None) -> None:
    """Pending and sent events per service, the oldest pending one's age, and the last publish error."""
    from minsheng.platform.outbox import outbox_status

    settings = settings_from_env()

    async def go() -> None:
        for name in service_names(service):
            rt = service_runtime(name, settings)
            try:
                s = await outbox_status(rt.db)
            finally:
                await rt.db.dispose()
            line = (
                f"{name:8} pending={s.pending} sent={s.sent} "
                f"oldest_pending_age={s.oldest_pending_age_seconds:.1f}s max_attempts={s.max_attempts}"
            )
            typer.echo(line + (f" last_error={s.last_error!r}" if s.last_error else ""))

    asyncio.run(go())


@outbox_app.command("resend")
def outbox_resend_cmd(
    since: Annotated[
        str,
        typer.Option(
            help="Re-send events the broker acknowledged at or after this time: ISO "
            "8601 (2026-12-06T03:00Z) or an age (90m, 6h, 2d)."
        ),
    ],
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Repeatable; all services when omitted.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="… and before this time (default: now).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count them.")] = False,
) -> None:
    """Publish acknowledged events again, after the broker lost data (restarted empty, a log truncated).
    The rows go back to pending; the running relays publish them in their original order, and the consumers'
    inboxes drop every event they had already handled. Only rows younger than MINSHENG_OUTBOX_RETENTION_HOURS
    are still there to re-send."""
    from minsheng.platform.outbox import resend_since

    settings = settings_from_env()
    start = parse_since(since)
    end = parse_since(until) if until else None
    names = [n for name in service or [None] for n in service_names(name)]  # type: ignore[list-item]

    async def go() -> None:
        for name in names:
            rt = service_runtime(name, settings)
            try:
                count = await resend_since(rt.db, start, until=end, dry_run=dry_run)
            finally:
                await rt.db.dispose()
            verb = "would re-send" if dry_run else "re-sending"
            typer.echo(
                f"{name:8} {verb} {count} events acknowledged since {start.isoformat(timespec='seconds')}"
                + (f" until {end.isoformat(timespec='seconds')}" if end else "")
            )

    asyncio.run(go())
