"""The published event contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

contracts_app = typer.Typer(help="The published event contracts.", no_args_is_help=True)


@contracts_app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Folder for the JSON Schemas and the AsyncAPI document.")] = Path(
        "minsheng/contracts/schemas"
    ),
) -> None:
    """Write one JSON Schema per event and an AsyncAPI document for the whole bus."""
    from minsheng.contracts.export import write_all

    for path in write_all(out):
        typer.echo(str(path))
