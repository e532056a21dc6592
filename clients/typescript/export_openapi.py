"""Writes each service's OpenAPI document as the running service serves it (``/<service>/openapi.json``),
built in-process: no server, no database connection (the app is built, never started).

    python clients/typescript/export_openapi.py --out clients/typescript/openapi
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from fastapi import FastAPI
from starlette.routing import Mount

from minsheng.runner import build_app
from minsheng.settings import Settings


def documents() -> dict[str, dict[str, object]]:
    with tempfile.TemporaryDirectory() as data_dir:
        app = build_app(Settings(mode="embedded", data_dir=Path(data_dir)))
        out: dict[str, dict[str, object]] = {}
        for route in app.routes:
            if isinstance(route, Mount) and isinstance(route.app, FastAPI):
                name = route.path.strip("/")
                # As served under its mount: the paths are relative to /<service>.
                out[name] = {**route.app.openapi(), "servers": [{"url": f"/{name}"}]}
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, document in documents().items():
        (out / f"{name}.json").write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{out / name}.json")


if __name__ == "__main__":
    main()
