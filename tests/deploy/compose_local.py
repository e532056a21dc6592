"""docker-compose.yml without Docker: read the compose file the way Compose does (merge keys, ``${VAR...}``
interpolation from an env file) and turn its minsheng services and jobs into local processes, and its gateway
into a local nginx with the same template.

Used by the compose-equivalent smoke test and by CI (``python -m tests.deploy.compose_local check-nginx``).
Only addresses change between the compose file and what runs here: ``postgres:5432`` → the local PostgreSQL
(databases named per test run), ``kafka:9092`` → the test broker, ``<service>:8000`` → a free local port.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from minsheng.localinfra.gateway import TemplateError, nginx_binary, nginx_main_conf, render_gateway
from minsheng.localinfra.processes import stop_process

__all__ = ["TemplateError", "nginx_binary", "nginx_main_conf", "render_gateway"]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
MINSHENG_DOCKERFILE = "deploy/Dockerfile"

_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


class InterpolationError(ValueError):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose-spec interpolation: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``, ``${VAR+alt}`` and ``$$`` (a literal ``$``)."""

    def sub(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        inner = _BRACED.match(m.group("braced"))
        if inner is None:
            raise InterpolationError(f"invalid interpolation ${{{m.group('braced')}}}")
        name, op, arg = inner.group("name"), inner.group("op"), interpolate(inner.group("arg") or "", env)
        present, value = name in env, env.get(name)
        nonempty = bool(value)
        if op is None:
            return value or ""
        if op == ":-":
            return value if nonempty else arg  # type: ignore[return-value]
        if op == "-":
            return value if present else arg  # type: ignore[return-value]
        if op in (":?", "?"):
            if (op == ":?" and not nonempty) or (op == "?" and not present):
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value  # type: ignore[return-value]
        if op == ":+":
            return arg if nonempty else ""
        return arg if present else ""  # "+"

    return _VAR.sub(sub, value)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(n, env) for n in node]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """A Compose ``.env`` file: ``NAME=value`` lines, ``#`` comments, optional quotes."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[name.strip()] = value
    return env


def variables_used(path: Path = COMPOSE_FILE) -> dict[str, bool]:
    """Every variable the compose file interpolates → whether it is required (``:?``/``?``)."""
    found: dict[str, bool] = {}
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    for m in _VAR.finditer(text):
        if m.group("named"):
            found.setdefault(m.group("named"), False)
        elif m.group("braced"):
            inner = _BRACED.match(m.group("braced"))
            if inner:
                required = (inner.group("op") or "") in (":?", "?")
                found[inner.group("name")] = found.get(inner.group("name"), False) or required
    return found


def load_compose(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose model after YAML merge keys and interpolation (profiles not filtered)."""
    raw = yaml.safe_load(path.read_text())
    return _interpolate_tree(raw, env)  # type: ignore[no-any-return]


def is_minsheng(service: Mapping[str, Any]) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == MINSHENG_DOCKERFILE


def env_list(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def start_order(services: Mapping[str, Mapping[str, Any]], names: list[str]) -> list[str]:
    """``names`` sorted so that each comes after what it depends on (a topological order)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"dependency cycle through {name}")
        visiting.add(name)
        for dep in sorted(depends_on(services[name])):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for n in sorted(names):
        visit(n)
    return [n for n in order if n in names]


# --- the gateway ---------------------------------------------------------------------------------------------


def check_nginx(variables: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on the gateway template rendered with ``variables``."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (deploy/ci/ensure-tools.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="minsheng-nginx-") as tmp:
        workdir = Path(tmp)
        rendered = workdir / "default.conf"
        rendered.write_text(render_gateway(variables))
        conf = nginx_main_conf(workdir, rendered)
        return subprocess.run([binary, "-t", "-p", str(workdir), "-c", str(conf)], capture_output=True, text=True)


def gateway_variables_for_check(compose: Mapping[str, Any]) -> dict[str, str]:
    """The gateway's environment from the compose file with the service hosts made resolvable here."""
    env = env_list(compose["services"]["gateway"])
    return {k: re.sub(r"^[a-z-]+:(\d+)$", r"127.0.0.1:\1", v) for k, v in env.items()}


# --- processes -------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self, cwd: Path = ROOT) -> None:
        log = tempfile.NamedTemporaryFile(prefix=f"minsheng-{self.name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = log.name
        self.proc = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as f:
            return f.read()
        return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def local_argv(command: list[str]) -> list[str]:
    """The container command as a local command: ``minsheng`` and ``python`` from this virtualenv."""
    if not command:
        raise ValueError("a minsheng service without a command")
    head, rest = command[0], command[1:]
    if head == "minsheng":
        return [sys.executable, "-m", "minsheng.cli", *rest]
    if head in ("python", "python3"):
        return [sys.executable, *rest]
    return list(command)


def with_option(argv: list[str], option: str, value: str) -> list[str]:
    out = list(argv)
    if option in out:
        out[out.index(option) + 1] = value
    else:
        out += [option, value]
    return out


def main(args: list[str]) -> int:
    """CI: ``check-nginx`` renders the gateway template from the compose file's gateway environment and runs
    ``nginx -t`` on it; ``check-env`` checks every compose variable is documented in .env.example."""
    if args[:1] == ["check-nginx"]:
        env = read_env_file(ENV_EXAMPLE)
        env.update({k: env.get(k) or "ci-placeholder" for k, required in variables_used().items() if required})
        result = check_nginx(gateway_variables_for_check(load_compose(env)))
        sys.stdout.write(result.stdout + result.stderr)
        return result.returncode
    if args[:1] == ["check-env"]:
        documented = read_env_file(ENV_EXAMPLE)
        missing = sorted(set(variables_used()) - set(documented))
        if missing:
            print(f"variables used by docker-compose.yml but not in .env.example: {missing}")
            return 1
        print(f"ok -- {len(variables_used())} compose variables documented in .env.example")
        return 0
    print("usage: python -m tests.deploy.compose_local check-nginx|check-env")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
