"""The one CSV writer every export uses (issues, figures, claim files, merchant statements).

- **Formula injection** (OWASP "CSV Injection"): a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return is prefixed with a single quote, so Excel and WPS show it as text instead of running it
  (``=HYPERLINK(…)`` in a resident's issue title). Numbers stay numbers: only ``str`` cells are touched.
- **Encoding**: UTF-8 with a byte-order mark (Excel and WPS need it to read Chinese), CRLF line ends. The BOM
  is part of the file: whoever publishes a hash of a file (a closed settlement's ``csv_sha256``) hashes
  ``encode()`` — exactly the bytes served.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from typing import Any

BOM = "\ufeff"
MEDIA_TYPE = "text/csv; charset=utf-8"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: Any) -> Any:
    """A cell as it is safe to write: text that a spreadsheet would take for a formula gets a leading ``'``."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


def rows_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV text (no BOM): for the chunks of a stream after the first."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerows([neutralise(c) for c in row] for row in rows)
    return buf.getvalue()


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]] = (), *, bom: bool = True) -> str:
    """A whole CSV file as text: BOM, header, rows."""
    return (BOM if bom else "") + rows_text([list(header)]) + rows_text(rows)


def encode(text: str) -> bytes:
    """The bytes served for a CSV text (the BOM is already in the text)."""
    return text.encode("utf-8")


def sha256_of(text: str) -> str:
    """The hash of exactly the bytes served."""
    return hashlib.sha256(encode(text)).hexdigest()
