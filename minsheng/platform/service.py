"""What a service is to the platform (``ServiceSpec``) and a running instance of one (``ServiceRuntime``):
its database, the outbox relay, the event consumer, and periodic jobs."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request

from minsheng.contracts.base import IntegrationEvent
from minsheng.platform.auth import make_verifier
from minsheng.platform.bus.base import EventBus
from minsheng.platform.clientconfig import ClientConfigSource
from minsheng.platform.consumer import EventConsumer, Handler
from minsheng.platform.db import Database
from minsheng.platform.housekeeping import purge_platform_tables
from minsheng.platform.outbox import OutboxRelay
from minsheng.platform.outbox_listener import OutboxListener, outbox_channel
from minsheng.platform.privacy import SealedColumns, remember_settings
from minsheng.platform.schema_head import database_at_head
from minsheng.platform.tables import PlatformTables
from minsheng.platform.tasks import cancel_all
from minsheng.platform.tokens import KeyRing, TokenVerifier
from minsheng.platform.uow import UnitOfWork
from minsheng.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """A periodic task (overdue sweeps, auto-confirmation, absence alerts). Deployment work: it runs in the
    processes of the role that runs jobs (``relay``, or ``all``), in every replica of it, so it must be safe
    to run concurrently: claim rows with SKIP LOCKED or make its effect idempotent.

    ``every_process``: not deployment work but state of the process itself (a cache of signing keys): it runs
    in every process that serves the HTTP API (roles ``web`` and ``all``) instead."""

    name: str
    every_seconds: float
    run: Callable[[ServiceRuntime], Awaitable[Any]]
    every_process: bool = False


Role = Literal["all", "web", "relay", "consumer"]
ROLES: tuple[Role, ...] = ("all", "web", "relay", "consumer")


@dataclass(frozen=True)
class RoleParts:
    """What a process of one role runs (``minsheng serve <service> --role``, docs/scaling.md)."""

    http: bool  # the service's HTTP API (the other roles answer only /healthz, /readyz and /metrics)
    relay: bool  # the outbox relay
    consume: bool  # the event consumers
    jobs: bool  # the deployment's periodic jobs and background work (``runtime.jobs_enabled``)


ROLE_PARTS: dict[Role, RoleParts] = {
    "all": RoleParts(http=True, relay=True, consume=True, jobs=True),
    "web": RoleParts(http=True, relay=False, consume=False, jobs=False),
    # Jobs go with the relay: it is the one background role that is not autoscaled on load (one or two
    # replicas), so a sweep does not run once per web or consumer replica.
    "relay": RoleParts(http=False, relay=True, consume=False, jobs=True),
    "consumer": RoleParts(http=False, relay=False, consume=True, jobs=False),
}


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    description: str
    metadata: sa.MetaData
    tables: PlatformTables
    router: APIRouter
    migrations_dir: Path
    handlers: Mapping[type[IntegrationEvent], Handler] = field(default_factory=dict)
    jobs: Sequence[Job] = ()
    seed_demo: Callable[[ServiceRuntime], Awaitable[None]] | None = None
    # Resources of the service's own that live as long as the running service (HTTP clients, a sender loop,
    # a local provider stand-in): entered after migrations, exited before the database closes.
    # ``runtime.jobs_enabled`` tells whether this process runs background work.
    lifespan: Callable[[ServiceRuntime], AbstractAsyncContextManager[None]] | None = None
    # A Prometheus collector of the service's own metrics, registered on the process's /metrics.
    metrics: Callable[[ServiceRuntime], Any] | None = None
    # Encrypted personal data (for `minsheng keys rotate-data`): one entry per table.
    sealed: Sequence[SealedColumns] = ()
    # Paths that speak another error format than problem+json (Open311): (path marker, renderer of a refused
    # request's description) for what the platform refuses before any route runs (NUL bytes, parameters that
    # fail validation).
    foreign_error_formats: Sequence[tuple[str, Callable[[str, str], Any]]] = ()
    # What the service adds to its `GET /config` for clients (uploads, categories); the rest is the platform's.
    client_config: ClientConfigSource | None = None


class ServiceRuntime:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: Settings,
        bus: EventBus,
        *,
        keyring: KeyRing | None = None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.bus = bus
        # The identity's signing keys (the identity service fills it; in the embedded mode every service
        # verifies against it) and this service's token verifier.
        self.keyring = keyring or KeyRing()
        self.verifier = verifier or make_verifier(self.keyring, settings)
        self.state: dict[str, Any] = {}  # per-runtime objects a service keeps (clients, caches)
        self.db = Database(
            settings.database_url_for(spec.name),
            spec.tables,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        remember_settings(self.db, settings)
        self.relay = OutboxRelay(
            self.db,
            bus,
            batch_size=settings.relay_batch_size,
            poll_seconds=settings.relay_poll_seconds,
            max_backoff_seconds=settings.relay_max_backoff_seconds,
        )
        self.consumer = EventConsumer(
            spec.name,
            self.db,
            bus,
            spec.handlers,
            max_attempts=settings.handler_max_attempts,
            retry_base_seconds=settings.handler_retry_base_seconds,
        )
        self.outbox_listener: OutboxListener | None = None  # set in start() where the relay runs on its own
        self._tasks: list[asyncio.Task[None]] = []
        self._resources = AsyncExitStack()
        self.jobs_enabled = False
        self.started = False

    @property
    def name(self) -> str:
        return self.spec.name

    def uow(self, *, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(self.db, self.spec.name, read_only=read_only)

    @property
    def role(self) -> Role:
        return self.settings.role

    async def migrate(self) -> None:
        """Upgrade the schema. On PostgreSQL under an advisory lock per service: the web, relay and consumer
        processes of one service may all start at once, and Alembic does not serialise itself. A schema already
        at head is seen without Alembic (minsheng.platform.schema_head), which is then never imported."""
        if not self.db.is_postgres:  # one process per SQLite file: no lock to take
            async with self.db.engine.connect() as conn:
                at_head = await database_at_head(conn, self.spec.name, self.spec.migrations_dir)
            if not at_head:
                await self._upgrade()
            return
        key = {"key": _advisory_key(f"minsheng-migrate-{self.name}")}
        async with self.db.engine.connect() as conn:
            await conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), key)
            try:
                if not await database_at_head(conn, self.spec.name, self.spec.migrations_dir):
                    await self._upgrade()
            finally:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)

    async def _upgrade(self) -> None:
        from minsheng.platform.migrations import upgrade

        await upgrade(self.db, self.spec.name, self.spec.migrations_dir, settings=self.settings)

    async def start(self, *, migrate: bool = True, relay: bool = True, consume: bool = True, jobs: bool = True) -> None:
        """Start what this process's role runs (``settings.role``); the flags can only turn parts off."""
        parts = ROLE_PARTS[self.role]
        if migrate:
            await self.migrate()
        self.jobs_enabled = jobs and parts.jobs
        if self.spec.lifespan is not None:
            await self._resources.enter_async_context(self.spec.lifespan(self))
        runs_relay = relay and parts.relay
        if self.db.is_postgres:  # docs/scaling.md: a relay in its own process is woken by NOTIFY
            self.db.notify_channel = None if runs_relay else outbox_channel(self.name)
        if runs_relay:
            self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox-relay"))
            if self.db.is_postgres and not parts.http:
                listener = self.outbox_listener = OutboxListener(self.db, outbox_channel(self.name))
                self._tasks.append(asyncio.create_task(listener.run(), name=f"{self.name}-outbox-listener"))
        if consume and parts.consume and self.consumer.topics:
            await self.bus.subscribe(self.consumer.group, self.consumer.topics, self.consumer)
        if jobs:
            for job in self.jobs_to_run():
                self._tasks.append(asyncio.create_task(self._every(job), name=f"{self.name}-{job.name}"))
        self.started = True

    def jobs_to_run(self) -> list[Job]:
        """The periodic jobs of this process's role: the deployment's (with housekeeping) where jobs run, the
        per-process ones where the HTTP API is served."""
        parts = ROLE_PARTS[self.role]
        return [job for job in (*self.spec.jobs, HOUSEKEEPING) if (parts.http if job.every_process else parts.jobs)]

    async def _every(self, job: Job) -> None:
        while True:
            # ±10 % jitter: replicas started together (after an outage, a rollout) do not run every job in
            # lock-step against the same database.
            await asyncio.sleep(job.every_seconds * random.uniform(0.9, 1.1))
            try:
                await job.run(self)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: job %s failed; next run in %ss", self.name, job.name, job.every_seconds)

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        with suppress(Exception):
            await self._resources.aclose()
        await self.db.dispose()
        self.started = False


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (``hash()`` differs between processes)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


async def in_transaction(runtime: ServiceRuntime, step: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run ``step`` (a use case, which never commits) in a unit of work of its own and commit it: a job's
    transaction."""
    async with runtime.uow() as uow:
        result = await step(uow)
        await uow.commit()
    return result


@dataclass(frozen=True)
class Batch:
    """What one batch of a job did, and whether it took a whole batch (there may be more: run it again)."""

    done: int
    full: bool


async def while_full(
    runtime: ServiceRuntime, step: Callable[[UnitOfWork], Awaitable[Batch]], *, max_batches: int | None = None
) -> int:
    """Run ``step`` in a transaction of its own again and again while it takes a whole batch (short
    transactions, steady progress), at most ``max_batches`` times; the total it did."""
    total, runs = 0, 0
    while True:
        result = await in_transaction(runtime, step)
        total, runs = total + result.done, runs + 1
        if not result.full or (max_batches is not None and runs >= max_batches):
            return total


async def in_batches(runtime: ServiceRuntime, step: Callable[[UnitOfWork], Awaitable[int]], batch: int) -> int:
    """``while_full`` for a step that handles at most ``batch`` rows and says how many: again until it handles
    fewer; the total it handled."""

    async def counted(uow: UnitOfWork) -> Batch:
        done = await step(uow)
        return Batch(done, full=done >= batch)

    return await while_full(runtime, counted)


async def _housekeeping(runtime: ServiceRuntime) -> dict[str, int]:
    s = runtime.settings
    return await purge_platform_tables(
        runtime.db,
        outbox_hours=s.outbox_retention_hours,
        inbox_days=s.inbox_retention_days,
        idempotency_hours=s.idempotency_retention_hours,
    )


HOUSEKEEPING = Job("housekeeping", 3600, _housekeeping)


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


async def unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work; GET and HEAD requests only read (``UnitOfWork.read_only``)."""
    async with runtime_of(request).uow(read_only=request.method in _READ_METHODS) as uow:
        yield uow


async def writing_unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """A unit of work that may commit whatever the method: for the reads that record something (a view of
    personal data is logged)."""
    async with runtime_of(request).uow() as uow:
        yield uow


async def _runtime(request: Request) -> ServiceRuntime:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a hand-off per request.
    return runtime_of(request)


_READ_METHODS = frozenset({"GET", "HEAD"})
UoW = Annotated[UnitOfWork, Depends(unit_of_work)]
WriteUoW = Annotated[UnitOfWork, Depends(writing_unit_of_work)]
Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
