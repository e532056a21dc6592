"""Finding unmasked personal data in response bodies: 11-digit mainland mobile numbers and 18-character
resident ID numbers. Generic over any JSON (or text) body."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9A-Za-z])")
ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])[0-9]{2}[0-9]{3}[0-9Xx]"
    r"(?![0-9A-Za-z])"
)
# Ids (a UUID's last group may hold eleven digits in a row) are not personal data.
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Fields that hold personal data by their name: a full value there is a leak even if the caller sent it.
SENSITIVE_KEY = re.compile(r"phone|mobile|tel|id_?number|id_?card|idcard|identity|health", re.IGNORECASE)


def strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(key, string) for every string in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from strings(v, key)
    elif isinstance(value, str):
        yield key, value


def unmasked(text: str) -> set[str]:
    text = UUID.sub(" ", text)
    return set(PHONE.findall(text)) | set(ID_NUMBER.findall(text))


def leaks(response_text: str, request_text: str = "") -> list[tuple[str, str]]:
    """Unmasked phone / ID numbers in a response: any under a personal-data key, and elsewhere any the request
    did not carry itself (a free-text field echoing what the caller typed is not a leak)."""
    # What the caller sent, as runs of digits: an echo may come back normalised ("0145…" → 145…).
    sent = re.findall(r"[0-9]+[Xx]?", request_text)

    def echoed(hit: str) -> bool:
        return any(hit.upper() in run.upper() for run in sent)

    try:
        doc = json.loads(response_text)
    except ValueError:
        return [("<text>", v) for v in sorted(unmasked(response_text)) if not echoed(v)]
    found = []
    for key, value in strings(doc):
        for hit in unmasked(value):
            if SENSITIVE_KEY.search(key) or not echoed(hit):
                found.append((key, hit))
    return found
