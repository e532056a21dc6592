"""The nginx gateway of the compose file and the Kubernetes ingress, run locally: the same template
(``deploy/nginx/templates/default.conf.template``) rendered the way the nginx image's entrypoint renders it."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_TEMPLATE = ROOT / "deploy" / "nginx" / "templates" / "default.conf.template"


class TemplateError(ValueError):
    pass


def render_gateway(variables: Mapping[str, str], template: Path = GATEWAY_TEMPLATE) -> str:
    """What the nginx image's entrypoint does: envsubst of the variables defined in its environment only,
    leaving nginx's own ``$host``-style variables alone."""
    text = template.read_text()
    for name, value in variables.items():
        text = text.replace("${" + name + "}", value)
    left = sorted(set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text)))
    if left:
        raise TemplateError(f"gateway template variables without a value: {left}")
    return text


def upstream_variables(listen_port: int, upstreams: Mapping[str, str]) -> dict[str, str]:
    """``GATEWAY_LISTEN_PORT`` and ``<SERVICE>_UPSTREAM`` for each service address (``host:port``)."""
    return {
        "GATEWAY_LISTEN_PORT": str(listen_port),
        **{f"{name.upper()}_UPSTREAM": address for name, address in upstreams.items()},
    }


def nginx_main_conf(workdir: Path, included: Path) -> Path:
    """A minimal nginx.conf like the image's: the rendered template is included in the http block."""
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / d).mkdir(parents=True, exist_ok=True)
        (workdir / d).chmod(0o777)  # nginx workers may run as another user when started by root
    conf = workdir / "nginx.conf"
    user = "user root root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "  default_type application/octet-stream;\n"
        f"  client_body_temp_path {workdir}/client_body;\n  proxy_temp_path {workdir}/proxy;\n"
        f"  fastcgi_temp_path {workdir}/fastcgi;\n  uwsgi_temp_path {workdir}/uwsgi;\n"
        f"  scgi_temp_path {workdir}/scgi;\n"
        "  sendfile on;\n"
        f"  include {included};\n"
        "}\n"
    )
    return conf


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
