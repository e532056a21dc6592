"""The Kafka topics the system needs, derived from the code so the deployment cannot drift from it.

- one topic per owning aggregate: every registered event contract's ``topic`` (``<service>.<aggregate>``);
- one dead-letter topic ``<service>.dlq`` per service that consumes events (has handlers);
- each name with ``MINSHENG_KAFKA_PREFIX`` in front (two deployments on one cluster).

Partitions, replication and retention come from the settings (``MINSHENG_KAFKA_*``), which the services also
read when they create a topic that is missing: the two cannot disagree.

``python -m minsheng.topics list`` prints the plan; ``python -m minsheng.topics create`` creates what is
missing with the given partitions, replication and retention, raises the partition count of existing topics
when asked for more (never lowers it: that would reorder keys) and sets retention on existing ones. It is
idempotent: the compose file and the Kubernetes Job run it on every deployment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Annotated

import typer

from minsheng import SERVICES
from minsheng.platform.bus.kafka import DLQ_SUFFIX, topic_partitions
from minsheng.platform.retry import Backoff
from minsheng.settings import KafkaSettings

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    name: str
    kind: str  # "events" | "dlq"
    partitions: int
    replication_factor: int
    config: dict[str, str]


def event_topics() -> list[str]:
    from minsheng.contracts import REGISTRY

    return sorted({model.topic for model in REGISTRY.values()})


def consuming_services() -> list[str]:
    from minsheng.runner import load_spec

    return [name for name in SERVICES if load_spec(name).handlers]


def topic_plan(
    settings: KafkaSettings | None = None,
    *,
    partitions: int | None = None,
    replication_factor: int | None = None,
    retention_hours: int | None = None,
    dlq_retention_hours: int | None = None,
    min_insync_replicas: int | None = None,
) -> list[TopicSpec]:
    """The topics on the cluster (with ``MINSHENG_KAFKA_PREFIX``), laid out from the settings — the same ones
    the services read when they create a missing topic — unless an argument overrides one. Event topics keep a
    week by default (replay window for a consumer that was down); dead letters a month (time for a person to
    look). Dead-letter topics need no parallelism: one partition keeps them in order."""
    s = settings or KafkaSettings()
    partitions = s.kafka_topic_partitions if partitions is None else partitions
    replication_factor = s.kafka_replication_factor if replication_factor is None else replication_factor
    retention_hours = s.kafka_retention_hours if retention_hours is None else retention_hours
    dlq_retention_hours = s.kafka_dlq_retention_hours if dlq_retention_hours is None else dlq_retention_hours
    if min_insync_replicas is None:
        min_insync_replicas = s.kafka_min_insync_replicas

    def config(hours: int) -> dict[str, str]:
        cfg = {"retention.ms": str(hours * HOUR_MS), "cleanup.policy": "delete"}
        if min_insync_replicas:
            cfg["min.insync.replicas"] = str(min_insync_replicas)
        return cfg

    plan = [
        TopicSpec(
            s.topic_name(t), "events", topic_partitions(t, partitions), replication_factor, config(retention_hours)
        )
        for t in event_topics()
    ]
    plan += [
        TopicSpec(
            s.topic_name(f"{svc}{DLQ_SUFFIX}"),
            "dlq",
            topic_partitions(f"{svc}{DLQ_SUFFIX}", partitions),
            replication_factor,
            config(dlq_retention_hours),
        )
        for svc in consuming_services()
    ]
    return plan


async def apply_plan(
    bootstrap: str, plan: list[TopicSpec], *, wait_seconds: float = 120.0, alter_existing: bool = True
) -> dict[str, str]:
    """Create missing topics; grow partitions and update retention of existing ones. Returns name → action."""
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.errors import for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="minsheng-topics", request_timeout_ms=15_000)
    deadline = time.monotonic() + wait_seconds
    backoff = Backoff(1.0, 5.0)
    while True:  # the broker may still be starting (compose starts us once its healthcheck passes, k8s may not)
        try:
            await admin.start()
            break
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("Kafka at %s not reachable yet (%s); retrying", bootstrap, exc)
            await asyncio.sleep(backoff.next_delay())
    actions: dict[str, str] = {}
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in plan if t.name not in existing]
        if missing:
            resp = await admin.create_topics(
                [NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.config) for t in missing]
            )
            for topic, code, *rest in resp.topic_errors:
                if code == TOPIC_ALREADY_EXISTS:  # another run raced us
                    actions[topic] = "exists"
                elif code:
                    raise for_code(code)(f"could not create topic {topic}: {rest[0] if rest else ''}")
                else:
                    actions[topic] = "created"
        present = [t for t in plan if t.name in existing]
        if present and alter_existing:
            described = await admin.describe_topics([t.name for t in present])
            counts = {d["topic"]: len(d.get("partitions") or ()) for d in described}
            grow = {t.name: NewPartitions(t.partitions) for t in present if counts.get(t.name, 0) < t.partitions}
            if grow:
                try:
                    await admin.create_partitions(grow)
                except Exception as exc:  # not fatal: consumers just cannot scale past the current count
                    log.warning("could not add partitions to %s: %s", sorted(grow), exc)
                    grow = {}
            configured = "configured"
            try:
                responses = await admin.alter_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, t.name, configs=t.config) for t in present]
                )
                errors = [(r[3], r[0], r[1]) for resp in responses for r in resp.resources if r[0]]
            except Exception as exc:  # some Kafka-protocol brokers do not implement AlterConfigs
                errors = [("*", -1, str(exc))]
            if errors:
                log.warning("could not update topic configs (%s); retention left as it is", errors[:3])
                configured = "configs kept"
            for t in present:
                actions[t.name] = (
                    f"partitions {counts.get(t.name)}→{t.partitions}, " if t.name in grow else ""
                ) + configured
    finally:
        await admin.close()
    return actions


cli = typer.Typer(help="The Kafka topics Minsheng needs, derived from the event contracts.", no_args_is_help=True)

# Every option defaults to the settings (MINSHENG_KAFKA_*), the same the services read: one source of truth.
Partitions = Annotated[
    int | None,
    typer.Option(
        help="Partitions per event topic: the ceiling on consumer replicas. [default: MINSHENG_KAFKA_TOPIC_PARTITIONS]"
    ),
]
Replication = Annotated[
    int | None,
    typer.Option(
        help="Replicas per partition (3 on a real cluster, 1 on one node). [default: MINSHENG_KAFKA_REPLICATION_FACTOR]"
    ),
]
Retention = Annotated[int | None, typer.Option(help="Event topic retention. [default: MINSHENG_KAFKA_RETENTION_HOURS]")]
DlqRetention = Annotated[
    int | None, typer.Option(help="Dead-letter topic retention. [default: MINSHENG_KAFKA_DLQ_RETENTION_HOURS]")
]
MinIsr = Annotated[
    int | None,
    typer.Option(help="min.insync.replicas, 0: broker default. [default: MINSHENG_KAFKA_MIN_INSYNC_REPLICAS]"),
]


@cli.command("list")
def list_cmd(
    partitions: Partitions = None,
    replication_factor: Replication = None,
    retention_hours: Retention = None,
    dlq_retention_hours: DlqRetention = None,
    min_insync_replicas: MinIsr = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the topic plan."""
    plan = topic_plan(
        partitions=partitions,
        replication_factor=replication_factor,
        retention_hours=retention_hours,
        dlq_retention_hours=dlq_retention_hours,
        min_insync_replicas=min_insync_replicas,
    )
    if as_json:
        typer.echo(json.dumps([asdict(t) for t in plan], indent=2))
        return
    for t in plan:
        typer.echo(
            f"{t.name:24} {t.kind:6} partitions={t.partitions} rf={t.replication_factor} "
            + " ".join(f"{k}={v}" for k, v in t.config.items())
        )


@cli.command("create")
def create_cmd(
    bootstrap: Annotated[str | None, typer.Option(help="[default: MINSHENG_KAFKA_BOOTSTRAP]")] = None,
    partitions: Partitions = None,
    replication_factor: Replication = None,
    retention_hours: Retention = None,
    dlq_retention_hours: DlqRetention = None,
    min_insync_replicas: MinIsr = None,
    wait_seconds: Annotated[float, typer.Option(help="How long to wait for the broker.")] = 120.0,
) -> None:
    """Create the topics (idempotent): missing ones created, partitions grown, retention updated."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = KafkaSettings()
    plan = topic_plan(
        settings,
        partitions=partitions,
        replication_factor=replication_factor,
        retention_hours=retention_hours,
        dlq_retention_hours=dlq_retention_hours,
        min_insync_replicas=min_insync_replicas,
    )
    actions = asyncio.run(apply_plan(bootstrap or settings.kafka_bootstrap, plan, wait_seconds=wait_seconds))
    for t in plan:
        typer.echo(f"{t.name}: {actions.get(t.name, 'unchanged')}")


if __name__ == "__main__":
    cli()
