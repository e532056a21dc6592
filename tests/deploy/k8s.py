"""Render the kustomizations under deploy/k8s without kustomize, and validate the result against the Kubernetes
OpenAPI schemas (kubernetes-validate bundles them, so this works offline).

The renderer covers exactly the kustomize features deploy/k8s uses — resources (files and directories),
components, namespace, ``labels`` (metadata only), images, and inline JSON 6902 patches — and refuses anything
else, so a new feature cannot be silently ignored. When ``kubectl`` is installed the tests compare its
``kubectl kustomize`` output with ours.

    python -m tests.deploy.k8s [kustomization dir ...]   # CI: render + validate, exit 1 on any error
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = ["overlays/production", "overlays/production/jobs", "base", "jobs", "infra", "common"]
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]  # oldest supported cluster and a current one
# Custom resources of the operators we target: no upstream schema; checked for the fields we rely on.
CRD_GROUPS = {"kafka.strimzi.io", "postgresql.cnpg.io", "monitoring.coreos.com"}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
}
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "components", "namespace", "labels", "images", "patches"}


class RenderError(ValueError):
    pass


def _load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kustomization(directory: Path) -> dict[str, Any]:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).exists():
            k: dict[str, Any] = yaml.safe_load((directory / name).read_text())
            unknown = set(k) - SUPPORTED_FIELDS
            if unknown:
                raise RenderError(f"{directory}: kustomize fields this renderer does not implement: {unknown}")
            return k
    raise RenderError(f"{directory}: no kustomization.yaml")


def _json_pointer_parts(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def _apply_json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    for op in ops:
        parts = _json_pointer_parts(op["path"])
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        if op["op"] in ("replace", "add"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif op["op"] == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if op["op"] == "replace" and last not in parent:
                    raise RenderError(f"patch replaces missing {op['path']}")
                parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise RenderError(f"unsupported patch op {op['op']}")


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    if doc.get("kind") == "CronJob":
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def render(directory: Path) -> list[dict[str, Any]]:
    k = _kustomization(directory)
    docs: list[dict[str, Any]] = []
    for entry in [*(k.get("resources") or []), *(k.get("components") or [])]:
        path = (directory / entry).resolve()
        docs += render(path) if path.is_dir() else copy.deepcopy(_load_docs(path))
    for label_set in k.get("labels") or []:
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise RenderError("labels with includeSelectors/includeTemplates are not implemented")
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(label_set["pairs"])
    if k.get("namespace"):
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = k["namespace"]
    for image in k.get("images") or []:
        for d in docs:
            for c in _containers(d):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
    for patch in k.get("patches") or []:
        target, ops = patch["target"], yaml.safe_load(patch["patch"])
        if not isinstance(ops, list):
            raise RenderError("only inline JSON 6902 patches are implemented")
        hits = [
            d
            for d in docs
            if d["kind"] == target.get("kind", d["kind"])
            and d["metadata"]["name"] == target.get("name", d["metadata"]["name"])
        ]
        if not hits:
            raise RenderError(f"patch target {target} matches nothing")
        for d in hits:
            _apply_json6902(d, ops)
    return docs


def kubectl_render(directory: Path) -> list[dict[str, Any]] | None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory}: {out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _check_custom_resource(doc: dict[str, Any]) -> list[str]:
    problems = []
    if not doc.get("metadata", {}).get("name"):
        problems.append("metadata.name missing")
    if not isinstance(doc.get("spec"), dict):
        problems.append("spec missing")
    kind = doc["kind"]
    if kind == "PrometheusRule":
        for group in doc["spec"].get("groups", []):
            for rule in group["rules"]:
                if not rule.get("alert") or not rule.get("expr"):
                    problems.append(f"rule without alert/expr: {rule}")
    return problems


def validate(docs: list[dict[str, Any]], versions: list[str] = KUBERNETES_VERSIONS) -> list[str]:
    """Errors as ``Kind/name: message``; an empty list means every document is valid."""
    import kubernetes_validate

    errors: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        ident = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        key = (doc.get("kind", ""), doc.get("metadata", {}).get("namespace", ""), doc.get("metadata", {}).get("name"))
        if key in seen:
            errors.append(f"{ident}: duplicate")
        seen.add(key)  # type: ignore[arg-type]
        group = doc.get("apiVersion", "").split("/")[0] if "/" in doc.get("apiVersion", "") else ""
        if group in CRD_GROUPS:
            errors += [f"{ident}: {p}" for p in _check_custom_resource(doc)]
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{ident} (k8s {version}): {exc.message} at {list(exc.path)}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(f"{ident} (k8s {version}): no schema ({exc})")
    return errors


def main(args: list[str]) -> int:
    failed = 0
    for rel in args or KUSTOMIZATIONS:
        directory = K8S / rel
        docs = render(directory)
        errors = validate(docs)
        theirs = kubectl_render(directory)
        if theirs is not None and _normal(theirs) != _normal(docs):
            errors.append("our rendering differs from `kubectl kustomize`")
        for e in errors:
            print(f"{rel}: {e}")
        print(
            f"{'FAIL' if errors else 'ok'} -- {rel}: {len(docs)} resources"
            + (" (cross-checked with kubectl kustomize)" if theirs is not None else "")
        )
        failed += bool(errors)
    return 1 if failed else 0


def _normal(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(yaml.safe_dump(d, sort_keys=True) for d in docs)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
