"""Dead letters: list, replay or discard the events a service's handler kept failing on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from minsheng.cli.common import ServiceArg, service_names, service_runtime, settings_from_env

dlq_app = typer.Typer(help="Dead letters: events a handler kept failing on.", no_args_is_help=True)


@dlq_app.command("list")
def dlq_list(service: ServiceArg = None, all_: Annotated[bool, typer.Option("--all")] = False) -> None:
    """Dead letters not yet replayed (``--all`` includes replayed and discarded ones)."""
    import sqlalchemy as sa

    from minsheng.platform.consumer import is_discarded

    settings = settings_from_env()

    async def go() -> None:
        for name in service_names(service):
            rt = service_runtime(name, settings)
            t = rt.db.tables.dead_letters
            query = sa.select(t).order_by(t.c.created_at)
            if not all_:
                query = query.where(t.c.replayed_at.is_(None))
            try:
                async with rt.db.engine.connect() as conn:
                    rows = (await conn.execute(query)).all()
            finally:
                await rt.db.dispose()
            for r in rows:
                typer.echo(
                    json.dumps(
                        {
                            "service": name,
                            "id": str(r.id),
                            "event_id": r.event_id,
                            "type": r.event_type,
                            "topic": r.topic,
                            "attempts": r.attempts,
                            "error": r.error,
                            "created_at": r.created_at.isoformat(),
                            "replayed_at": r.replayed_at.isoformat() if r.replayed_at else None,
                            "discarded": is_discarded(r.error),
                        },
                        ensure_ascii=False,
                    )
                )

    asyncio.run(go())


@dlq_app.command("replay")
def dlq_replay(
    service: Annotated[str, typer.Argument(help="The consuming service whose dead letters to replay.")],
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these dead letters; repeatable.")] = None,
) -> None:
    """Run dead-lettered events through the service's handler again (the inbox keeps it exactly-once).
    A letter that still fails stays a dead letter (with the new error); the command reports it and exits 0 —
    fix the cause and replay again, or give up on it with `minsheng dlq discard`."""
    outcomes: list[tuple[str, str]] = _with_consumer(service, lambda consumer: consumer.replay_dead_letters(ids))
    for dead_id, outcome in outcomes:
        typer.echo(f"{dead_id}: {outcome}")
    failing = sum(1 for _, o in outcomes if o.startswith("still failing"))
    typer.echo(
        f"{service}: {len(outcomes) - failing} replayed, {failing} still failing (kept as dead letters"
        + ("; fix the cause and replay again, or `minsheng dlq discard`)" if failing else ")")
    )


@dlq_app.command("discard")
def dlq_discard(
    service: Annotated[str, typer.Argument(help="The consuming service whose dead letters to discard.")],
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only these dead letters; repeatable.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every unreplayed dead letter of the service.")] = False,
) -> None:
    """Give up on dead letters: they leave the replay queue and the MinshengDeadLetters alert. Each row stays,
    marked discarded, for the record (`dlq list --all`); the <service>.dlq topic keeps its copy."""
    if not ids and not all_:
        raise typer.BadParameter("name the dead letters with --id (repeatable), or discard every one with --all")
    discarded: list[tuple[str, str | None]] = _with_consumer(
        service, lambda consumer: consumer.discard_dead_letters(ids)
    )
    for dead_id, event_type in discarded:
        typer.echo(f"{dead_id}: discarded ({event_type})")
    missing = sorted(set(ids or ()) - {d for d, _ in discarded})
    typer.echo(
        f"{service}: {len(discarded)} discarded"
        + (f"; not found or already replayed/discarded: {', '.join(missing)}" if missing else "")
    )


def _with_consumer(service: str, act: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``act`` on the service's event consumer; an unknown dead-letter id is a bad parameter."""
    settings = settings_from_env()

    async def go() -> Any:
        rt = service_runtime(service_names(service)[0], settings)
        try:
            return await act(rt.consumer)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        finally:
            await rt.db.dispose()

    return asyncio.run(go())
