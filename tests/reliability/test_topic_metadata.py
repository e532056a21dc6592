"""What only a real broker can show (issue 14): the topics' metadata — partition counts and retention — comes
from the topic job (``python -m minsheng.topics create``, the compose and Kubernetes job), and the services
agree with it whichever starts first.

1. The job runs first, as in a deployment: every planned topic is on the broker with the planned partitions and
   retention; the services then use those topics as they are (the issues consumer is assigned every partition
   the job made) and a report still becomes an issue; running the job again changes no partition count.
2. The services start first (they create what is missing), the job runs later with the same settings: no topic
   grows (the old default of 3 in the services against 6 in the job grew them and broke per-key order).

Each case on its own topic prefix, on the run's broker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from minsheng.platform.bus.kafka import KafkaBus
from minsheng.platform.ids import uuid7
from minsheng.settings import KafkaSettings
from minsheng.topics import TopicSpec, topic_plan
from tests.conftest import distributed_settings
from tests.support.client import running_system
from tests.support.infra import LocalBroker, Tansu
from tests.support.processes import run_module
from tests.support.reliability import hazard, record, register_riders, wait_for_effects

pytestmark = [pytest.mark.integration]

PARTITIONS = 3  # not the default (6), so a count the job did not set would show


def _skip_on_tansu(kafka: tuple[str, LocalBroker | None]) -> None:
    if isinstance(kafka[1], Tansu):
        pytest.skip("Tansu implements neither DescribeConfigs nor CreatePartitions as Apache Kafka does")


async def topic_job(bootstrap: str, prefix: str, partitions: int | None) -> str:
    """The topic job as compose and Kubernetes run it: its own process, configured by the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINSHENG_KAFKA_")}
    env.update({"MINSHENG_KAFKA_BOOTSTRAP": bootstrap, "MINSHENG_KAFKA_PREFIX": prefix})
    if partitions is not None:
        env["MINSHENG_KAFKA_TOPIC_PARTITIONS"] = str(partitions)
    code, out = await run_module("minsheng.topics", "create", env=env, seconds=180)
    assert code == 0, out
    return out


async def on_broker(bootstrap: str, plan: list[TopicSpec]) -> dict[str, dict[str, Any]]:
    """Each planned topic as the broker describes it: partitions and retention.ms."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t.name for t in plan]
        described = await admin.describe_topics(names)
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    found: dict[str, dict[str, Any]] = {
        d["topic"]: {"partitions": len(d.get("partitions") or ()), "error": d.get("error_code")} for d in described
    }
    for response in configs:
        for _code, _message, _type, name, entries in response.resources:
            values = {entry[0]: entry[1] for entry in entries}
            found.setdefault(name, {})["retention.ms"] = values.get("retention.ms")
    return found


def differences(plan: list[TopicSpec], found: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for t in plan:
        got = found.get(t.name, {})
        if got.get("error") or got.get("partitions") != t.partitions:
            out.append(f"{t.name}: {got.get('partitions')} partitions, planned {t.partitions}")
        if got.get("retention.ms") != t.config["retention.ms"]:
            out.append(f"{t.name}: retention.ms {got.get('retention.ms')}, planned {t.config['retention.ms']}")
    return out


async def test_topic_metadata_comes_from_the_topic_job_and_the_services_agree_with_it(
    tmp_path: Path, pg_template: str, kafka: tuple[str, LocalBroker | None]
) -> None:
    _skip_on_tansu(kafka)
    bootstrap = kafka[0]

    # 1. The job first, as a deployment runs it.
    prefix = f"tj{uuid7().hex[-6:]}."
    plan = topic_plan(KafkaSettings(kafka_prefix=prefix, kafka_topic_partitions=PARTITIONS))
    first = await topic_job(bootstrap, prefix, PARTITIONS)
    assert all(f"{t.name}: created" in first for t in plan), first
    assert differences(plan, await on_broker(bootstrap, plan)) == []

    settings = distributed_settings(
        tmp_path, pg_template, bootstrap, kafka_prefix=prefix, kafka_topic_partitions=PARTITIONS
    )
    async with running_system(settings) as s:
        riders = await register_riders(s, 1, prefix="topics-rider")
        r = await s.client.post("/points/hazard-reports", headers=riders[0], json=hazard(0, tag="topics"))
        assert r.status_code == 201, r.text
        effects, _ = await wait_for_effects(settings.database_url_for("issues"), [r.json()["id"]], within=60)
        assert effects["lost"] == 0
        bus = s.bus
        assert isinstance(bus, KafkaBus)
        issues = next(c for c in bus.consumers if c._group_id == f"{prefix}issues")
        assigned = sorted(tp.partition for tp in issues.assignment() if tp.topic == f"{prefix}points.hazard")
    assert assigned == list(range(PARTITIONS)), "the consumer reads the partitions the job made"
    after_services = await on_broker(bootstrap, plan)
    assert differences(plan, after_services) == [], "the services changed nothing the job set"

    again = await topic_job(bootstrap, prefix, PARTITIONS)
    assert "partitions" not in again and all(f"{t.name}: configured" in again for t in plan), again
    assert differences(plan, await on_broker(bootstrap, plan)) == []

    # 2. The services first (they create what is missing, with the default partition count), the job later.
    late = f"tl{uuid7().hex[-6:]}."
    late_plan = topic_plan(KafkaSettings(kafka_prefix=late, kafka_topic_partitions=6))
    default_partitions = KafkaSettings.model_fields["kafka_topic_partitions"].default
    services = KafkaBus(bootstrap, prefix=late, partitions=default_partitions)
    await services.ensure_topics([t.name for t in late_plan])
    created_by_services = await on_broker(bootstrap, late_plan)
    late_job = await topic_job(bootstrap, late, None)  # the job's own default, as compose leaves it
    assert "partitions" not in late_job, late_job
    after_job = await on_broker(bootstrap, late_plan)
    grown = [n for n in after_job if after_job[n]["partitions"] != created_by_services[n]["partitions"]]
    assert grown == [], "the topic job grew topics the services had created"
    assert differences(late_plan, after_job) == [], "and set their retention"

    record(
        "topic_metadata",
        {
            "broker": kafka[1].name if kafka[1] is not None else "external cluster",
            "topics": len(plan),
            "event_topic_partitions": PARTITIONS,
            "mismatches_after_job": 0,
            "mismatches_after_services_started": 0,
            "issues_consumer_partitions": len(assigned),
            "partitions_changed_by_second_job_run": 0,
            "services_first_default_partitions": default_partitions,
            "partitions_changed_by_job_after_services": len(grown),
        },
    )
