"""A stand-in for ``kubectl`` that checks a documented deployment procedure without a cluster.

It keeps what the cluster would hold in a JSON file (``FAKE_KUBECTL_STATE``) and refuses — exit 1 with the
reason — any step that needs an object no earlier step created: a namespaced object in a namespace that does
not exist; a pod template naming a ServiceAccount, ConfigMap or Secret that is not there; an operator resource
naming a Secret that is not there; a ``wait`` or ``rollout status`` on something never applied. Within one
``apply`` the namespaces are created first and ConfigMaps / ServiceAccounts count (kubectl applies them before
the pods they configure start); Secrets must come from an earlier step.

The commands it understands are the ones the runbook uses: ``apply -k DIR``, ``apply -f FILE``,
``-n NS create secret generic NAME …``, ``-n NS wait …``, ``-n NS rollout status deploy/X …``,
``-n NS delete job …``. Anything else fails, so the runbook cannot quietly grow a step this does not check.

    FAKE_KUBECTL_STATE=state.json python -m tests.deploy.fake_kubectl apply -k deploy/k8s/infra
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.deploy import k8s

Key = tuple[str, str, str]  # kind, namespace ("" for cluster-scoped), name
# Operator-managed kinds: their CRDs are installed with the operators, the runbook's step 0.
SECRET_FIELDS = ("passwordSecret", "accessKeyId", "secretAccessKey", "secretKeyRef", "secretRef")


class Refused(Exception):
    pass


def load(path: Path) -> set[Key]:
    if not path.exists():
        return {("Namespace", "", n) for n in ("default", "kube-system")}
    return {tuple(k) for k in json.loads(path.read_text())}  # type: ignore[misc]


def save(path: Path, state: set[Key]) -> None:
    path.write_text(json.dumps(sorted(state)))


def key_of(doc: dict[str, Any]) -> Key:
    kind = doc["kind"]
    ns = "" if kind in k8s.CLUSTER_SCOPED else doc["metadata"].get("namespace") or "default"
    return kind, ns, doc["metadata"]["name"]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    template = spec.get("template")
    return (template or {}).get("spec") if isinstance(template, dict) else None


def _secret_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in SECRET_FIELDS and isinstance(v, dict) and "name" in v and not v.get("optional"):
                yield v["name"]
            yield from _secret_names(v)
    elif isinstance(node, list):
        for v in node:
            yield from _secret_names(v)


def needs(doc: dict[str, Any]) -> list[tuple[Key, bool]]:
    """(object, may it come from the same apply?) for everything ``doc`` needs."""
    _, ns, _ = key_of(doc)
    out: list[tuple[Key, bool]] = []
    if ns:
        out.append((("Namespace", "", ns), True))
    pod = _pod_spec(doc)
    if pod is not None:
        sa = pod.get("serviceAccountName")
        if sa and sa != "default":
            out.append((("ServiceAccount", ns, sa), True))
        for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            for source in c.get("envFrom") or []:
                if "configMapRef" in source and not source["configMapRef"].get("optional"):
                    out.append((("ConfigMap", ns, source["configMapRef"]["name"]), True))
            for env in c.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
                if ref and not ref.get("optional"):
                    out.append((("ConfigMap", ns, ref["name"]), True))
    out += [(("Secret", ns, name), False) for name in _secret_names(doc.get("spec") or {})]
    return out


def apply(docs: list[dict[str, Any]], state: set[Key]) -> None:
    docs = sorted(docs, key=lambda d: d["kind"] != "Namespace")  # kubectl/kustomize put namespaces first
    created = {key_of(d) for d in docs}
    missing = []
    for doc in docs:
        for need, same_step in needs(doc):
            if need not in state and not (same_step and need in created):
                missing.append(f"{'/'.join(key_of(doc))} needs {need[0]} {need[1] + '/' if need[1] else ''}{need[2]}")
    if missing:
        raise Refused("; ".join(sorted(set(missing))))
    state |= created


def _namespace(args: list[str]) -> tuple[str, list[str]]:
    ns = "default"
    rest = []
    it = iter(args)
    for a in it:
        if a in ("-n", "--namespace"):
            ns = next(it)
        elif a.startswith("--namespace="):
            ns = a.split("=", 1)[1]
        else:
            rest.append(a)
    return ns, rest


def run(args: list[str], state: set[Key], root: Path) -> str:
    ns, rest = _namespace(args)
    if rest[:1] == ["apply"] and len(rest) >= 3 and rest[1] in ("-k", "-f"):
        target = root / rest[2]
        docs = k8s.render(target) if rest[1] == "-k" else [d for d in yaml.safe_load_all(target.read_text()) if d]
        for d in docs:
            if d["kind"] not in k8s.CLUSTER_SCOPED and not d["metadata"].get("namespace"):
                d["metadata"]["namespace"] = ns
        apply(docs, state)
        return f"applied {len(docs)} objects from {rest[2]}"
    if ("Namespace", "", ns) not in state:
        raise Refused(f"namespace {ns} does not exist")
    if rest[:3] == ["create", "secret", "generic"] or rest[:2] == ["create", "secret"]:
        name = rest[3]
        if ("Secret", ns, name) in state:
            raise Refused(f"secret {ns}/{name} already exists")
        state.add(("Secret", ns, name))
        return f"secret/{name} created"
    if rest[:1] == ["wait"]:
        targets = [a for a in rest[1:] if not a.startswith("-")]
        if "--all" in rest:
            kind = {"job": "Job", "jobs": "Job"}[targets[0]]
            if not any(k == kind and n == ns for k, n, _ in state):
                raise Refused(f"wait: no {kind} in {ns}")
            return f"waited for every {kind}"
        for t in targets:
            kind, _, name = t.partition("/")
            kind = {"kafka": "Kafka", "cluster": "Cluster", "job": "Job", "deploy": "Deployment"}[kind]
            if (kind, ns, name) not in state:
                raise Refused(f"wait: {kind} {ns}/{name} was never created")
        return "condition met"
    if rest[:2] == ["rollout", "status"]:
        for t in (a for a in rest[2:] if not a.startswith("-")):
            kind, _, name = t.partition("/")
            if ("Deployment", ns, name) not in state:
                raise Refused(f"rollout status: Deployment {ns}/{name} was never created")
        return "successfully rolled out"
    if rest[:2] == ["delete", "job"]:
        return "deleted"
    raise Refused(f"this stand-in does not know: kubectl {' '.join(args)}")


def main(args: list[str]) -> int:
    path = Path(os.environ["FAKE_KUBECTL_STATE"])
    state = load(path)
    try:
        print(run(args, state, Path.cwd()))
    except Refused as exc:
        print(f"kubectl (stand-in): {exc}", file=sys.stderr)
        return 1
    save(path, state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
