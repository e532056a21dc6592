"""The identity service from the command line: development tokens, admin accounts, signing and field keys."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated

import typer

from minsheng.cli.common import ServiceArg, service_names, settings_from_env

admin_app = typer.Typer(help="Staff accounts (the identity service).", no_args_is_help=True)
keys_app = typer.Typer(
    help="Keys: the identity's token-signing keys and the field keys of personal data at rest.", no_args_is_help=True
)


def token(
    role: Annotated[
        list[str],
        typer.Option("--role", "-r", help="resident, grid_worker, rider, merchant, staff, admin; repeatable."),
    ],
    sub: Annotated[str, typer.Option(help="The subject (user id).")] = "dev-user",
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help="e.g. community:yunxing, compound:yuntaiyuan, *; repeatable."),
    ] = None,
    name: str | None = None,
    ttl: Annotated[int, typer.Option(help="Seconds until it expires.")] = 3600 * 12,
) -> None:
    """Mint a development token, signed with the identity service's key store (its database): for
    development and tests. Real clients sign in (POST /identity/wechat/login, /identity/staff/login)."""
    from minsheng.platform.auth import Role
    from services.identity.keys import dev_token

    for r in role:
        if r not in Role.__members__:
            raise typer.BadParameter(f"unknown role {r!r}", param_hint="--role")
    for value in scope or []:
        # A token's scope claim is one space-separated string: "community:x *" would be read as two scopes,
        # one of them district-wide.
        if not value or any(c.isspace() for c in value) or "\x00" in value:
            raise typer.BadParameter(
                f"{value!r}: a scope value may not be empty or contain whitespace; repeat --scope for several",
                param_hint="--scope",
            )
    typer.echo(asyncio.run(dev_token(settings_from_env(), sub, role, scope or [], name=name, ttl_seconds=ttl)))


@admin_app.command("create")
def admin_create(
    username: str,
    password: Annotated[str | None, typer.Option(help="Default: read from MINSHENG_ADMIN_PASSWORD or prompt.")] = None,
    display_name: Annotated[str | None, typer.Option("--name")] = None,
) -> None:
    """Bootstrap an admin account (user name + password + a TOTP authenticator, printed once)."""
    from services.identity.cli import create_admin

    password = (
        password
        or os.environ.get("MINSHENG_ADMIN_PASSWORD")
        or typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    try:
        out = asyncio.run(create_admin(settings_from_env(), username, password, display_name))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key. It is published at once and signs once every service can have read it (key
    reload + JWKS refetch interval); the current key signs until then and retires after the longest
    access-token lifetime more (both are published until then)."""
    from services.identity.cli import rotate_keys

    typer.echo(json.dumps(asyncio.run(rotate_keys(settings_from_env())), indent=2))


@keys_app.command("list")
def keys_list() -> None:
    """The key store: kid, created, retiring (no private material)."""
    from services.identity.cli import list_keys

    for line in asyncio.run(list_keys(settings_from_env())):
        typer.echo(json.dumps(line))


@keys_app.command("rotate-data")
def keys_rotate_data(
    service: ServiceArg = None,
    batch: Annotated[int, typer.Option(help="Rows per committed batch.")] = 500,
    rehash: Annotated[
        bool, typer.Option(help="Also recompute the keyed lookup hashes (after MINSHENG_FIELD_LOOKUP_KEY changed).")
    ] = False,
) -> None:
    """Re-encrypt every sealed personal-data value under the current field key (MINSHENG_FIELD_KEY_CURRENT).

    Resumable (committed batches; a re-run does the rest) and safe to run on several replicas at once
    (FOR UPDATE SKIP LOCKED on PostgreSQL). The services keep serving meanwhile. See docs/operations.md."""
    from minsheng.platform.db import Database
    from minsheng.platform.keyrotation import remaining, rotate_service
    from minsheng.platform.privacy import field_cipher
    from minsheng.runner import load_spec

    settings = settings_from_env()
    cipher = field_cipher(settings)

    async def go() -> None:
        for name in service_names(service):
            spec = load_spec(name)
            if not spec.sealed:
                continue
            db = Database(settings.database_url_for(name), spec.tables)
            try:
                stats = await rotate_service(db, spec.metadata, spec.sealed, cipher, batch=batch, rehash=rehash)
                left = sum([await remaining(db, spec.metadata.tables[e.table], e, cipher) for e in spec.sealed])
            finally:
                await db.dispose()
            tables = ", ".join(f"{t} {n}" for t, n in stats.by_table.items()) or "nothing to do"
            typer.echo(
                f"{name}: {stats.rows} rows ({stats.values} values, {stats.rehashed} hashes) re-sealed "
                f"under {cipher.current} in {stats.seconds:.1f} s ({stats.rows_per_second:,.0f} rows/s): "
                f"{tables}; not yet under {cipher.current}: {left}"
            )

    asyncio.run(go())
