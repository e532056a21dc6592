"""Languages of the texts people read in errors: 简体中文 by default, English when the request prefers it.

The English source strings are the gettext msgids; the catalogs under ``minsheng/locale`` are read from their
``.po`` files on first use (no compile step, so an installed package and a checkout behave alike). A message
with values is written as a template with named placeholders — ``_t("No {what} {id}", what=..., id=...)`` —
so the catalog holds the template and each language formats the same placeholders. ``python -m
minsheng.platform.catalogs check`` (in CI) re-extracts the messages and fails on a stale catalog, a missing
translation or a translation whose placeholders differ; docs/i18n.md tells how to add a message.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"
DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en")
SOURCE_LOCALE = "en"  # the msgids are English
CONTENT_LANGUAGE = {"zh_CN": "zh-CN", "en": "en"}


class Text:
    """A translatable message: an English template and the values of its placeholders. ``str()`` is English."""

    __slots__ = ("params", "template")

    def __init__(self, template: str, params: Mapping[str, Any]) -> None:
        self.template = template
        self.params = dict(params)

    def render(self, locale: str) -> str:
        values = {k: translate(v, locale) if isinstance(v, Text) else v for k, v in self.params.items()}
        template = gettext(self.template, locale)
        if not values:
            return template
        # A broken translation (or template) must not cost the client its answer: English, else the raw text.
        for candidate in (template, self.template):
            try:
                return candidate.format_map(values)
            except (KeyError, IndexError, ValueError, AttributeError):
                continue
        return self.template

    def __str__(self) -> str:
        return self.render(SOURCE_LOCALE)

    def __repr__(self) -> str:
        return f"_t({self.template!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Text):
            return (self.template, self.params) == (other.template, other.params)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.template)


def _t(template: str, /, **params: Any) -> Text:
    """Mark a message for translation (extracted by ``pybabel extract``); placeholders are ``{name}``."""
    return Text(template, params)


def N_(message: str) -> str:
    """Mark a string chosen at runtime as a msgid (gettext_noop); it stays a plain ``str``."""
    return message


class Term(Text):
    """A msgid known only at runtime: a thing's name such as ``issue_type`` (``not_found``'s first argument)
    or a phrase marked with ``N_``. A language without an entry shows it with spaces for underscores."""

    __slots__ = ()

    def __init__(self, msgid: str) -> None:
        super().__init__(msgid, {})

    def render(self, locale: str) -> str:
        return noun(self.template, locale)


class Localized(Text):
    """A value that is data in several languages (a matter's Chinese and English names): no catalog entry."""

    __slots__ = ()

    def __init__(self, *, zh_CN: str, en: str) -> None:
        super().__init__(en, {"zh_CN": zh_CN, "en": en})

    def render(self, locale: str) -> str:
        return str(self.params.get(locale) or self.template)


Message = str | Text

# Starlette answers route-level errors with the HTTP reason phrase as the detail; these are their msgids.
HTTP_REASONS = (
    _t("Bad Request"),
    _t("Unauthorized"),
    _t("Forbidden"),
    _t("Not Found"),
    _t("Method Not Allowed"),
    _t("Not Acceptable"),
    _t("Conflict"),
    _t("Request Entity Too Large"),
    _t("Content Too Large"),
    _t("Unsupported Media Type"),
    _t("Unprocessable Entity"),
    _t("Unprocessable Content"),
    _t("Too Many Requests"),
    _t("Internal Server Error"),
    _t("Service Unavailable"),
)

# pydantic's validation errors by ``type``; the placeholders are the error's ``ctx`` members. English answers
# keep pydantic's own wording (it has the plural forms); an unlisted type keeps it in every language.
VALIDATION_MESSAGES: dict[str, Text] = {
    "missing": _t("Field required"),
    "extra_forbidden": _t("Extra inputs are not permitted"),
    "string_type": _t("Input should be a valid string"),
    "string_too_short": _t("String should have at least {min_length} characters"),
    "string_too_long": _t("String should have at most {max_length} characters"),
    "string_pattern_mismatch": _t("String should match pattern '{pattern}'"),
    "int_type": _t("Input should be a valid integer"),
    "int_parsing": _t("Input should be a valid integer, unable to parse string as an integer"),
    "int_from_float": _t("Input should be a valid integer, got a number with a fractional part"),
    "float_type": _t("Input should be a valid number"),
    "float_parsing": _t("Input should be a valid number, unable to parse string as a number"),
    "finite_number": _t("Input should be a finite number"),
    "decimal_type": _t("Decimal input should be an integer, float, string or Decimal object"),
    "decimal_parsing": _t("Input should be a valid decimal"),
    "decimal_max_digits": _t("Decimal input should have no more than {max_digits} digits in total"),
    "decimal_max_places": _t("Decimal input should have no more than {decimal_places} decimal places"),
    "multiple_of": _t("Input should be a multiple of {multiple_of}"),
    "bool_type": _t("Input should be a valid boolean"),
    "bool_parsing": _t("Input should be a valid boolean, unable to interpret input"),
    "greater_than": _t("Input should be greater than {gt}"),
    "greater_than_equal": _t("Input should be greater than or equal to {ge}"),
    "less_than": _t("Input should be less than {lt}"),
    "less_than_equal": _t("Input should be less than or equal to {le}"),
    "enum": _t("Input should be {expected}"),
    "literal_error": _t("Input should be {expected}"),
    "uuid_type": _t("UUID input should be a string, bytes or UUID object"),
    "uuid_parsing": _t("Input should be a valid UUID"),
    "date_type": _t("Input should be a valid date"),
    "date_parsing": _t("Input should be a valid date in the format YYYY-MM-DD"),
    "date_from_datetime_parsing": _t("Input should be a valid date or datetime"),
    "date_from_datetime_inexact": _t("Datetimes provided to dates should have zero time"),
    "datetime_type": _t("Input should be a valid datetime"),
    "datetime_parsing": _t("Input should be a valid datetime"),
    "datetime_from_date_parsing": _t("Input should be a valid datetime or date"),
    "timezone_aware": _t("Input should have timezone info"),
    "time_type": _t("Input should be a valid time"),
    "time_parsing": _t("Input should be in a valid time format"),
    "list_type": _t("Input should be a valid list"),
    "too_short": _t("List should have at least {min_length} items"),
    "too_long": _t("List should have at most {max_length} items"),
    "dict_type": _t("Input should be a valid dictionary"),
    "model_type": _t("Input should be a valid object"),
    "model_attributes_type": _t("Input should be a valid object"),
    "json_invalid": _t("Invalid JSON: {error}"),
    "json_type": _t("JSON input should be string, bytes or bytearray"),
    "url_type": _t("URL input should be a string or URL"),
    "url_parsing": _t("Input should be a valid URL"),
    "url_scheme": _t("URL scheme should be {expected_schemes}"),
    "union_tag_invalid": _t("Input tag {tag} does not match any of the expected tags: {expected_tags}"),
    "union_tag_not_found": _t("Unable to extract tag using discriminator {discriminator}"),
}


def validation_message(error: Mapping[str, Any], locale: str) -> str:
    """One pydantic error's message in ``locale``: by its ``type``, with its ``ctx`` in the placeholders."""
    english = str(error.get("msg", ""))
    known = VALIDATION_MESSAGES.get(str(error.get("type", "")))
    if known is None or locale == SOURCE_LOCALE:
        return english
    template = gettext(known.template, locale)
    if template == known.template:  # not translated
        return english
    ctx = dict(error.get("ctx") or {})
    if isinstance(ctx.get("expected"), str) and locale == "zh_CN":  # pydantic lists choices as "'a', 'b' or 'c'"
        ctx["expected"] = ctx["expected"].replace("', '", "'、'").replace(" or ", " 或 ")
    try:
        return template.format_map(ctx)
    except (KeyError, IndexError, ValueError):
        return english


@cache
def catalog(locale: str) -> dict[str, str]:
    """msgid → msgstr of one language, fuzzy and untranslated entries left out (they fall back to English)."""
    path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    return read_po_translations(path.read_text(encoding="utf-8"))


_PO_ESCAPE = re.compile(r'\\([\\trn"])')
_PO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _po_string(quoted: str) -> str:
    return _PO_ESCAPE.sub(lambda m: _PO_ESCAPES.get(m.group(1), m.group(1)), quoted.strip()[1:-1])


def read_po_translations(text: str) -> dict[str, str]:
    """The translated, not fuzzy, singular entries of a ``.po`` file (what Babel's ``read_po`` gives for them).
    Read here rather than with Babel: Babel's catalog loads its CLDR locale data, ~7 MB of every server's idle
    memory for two small dictionaries. tests/unit/test_i18n.py checks both readers agree on the catalogs."""
    found: dict[str, str] = {}
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal fuzzy, current
        msgid, msgstr = "".join(parts.get("msgid", [])), "".join(parts.get("msgstr", []))
        if msgid and msgstr and not fuzzy and "msgid_plural" not in parts:
            found[msgid] = msgstr
        parts.clear()
        current, fuzzy = None, False

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith('"'):
            if current is not None:
                current.append(_po_string(line))
            continue
        if any(k.startswith("msgstr") for k in parts) and not line.startswith("msgstr"):
            flush()  # an entry ends where anything but its msgstr lines follows
        if line.startswith("#,"):
            fuzzy = fuzzy or "fuzzy" in (flag.strip() for flag in line[2:].split(","))
        elif line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            current = parts.setdefault(keyword, [])
            current.append(_po_string(rest))
        else:
            current = None
    flush()
    return found


def load_catalogs() -> None:
    """Read every catalog now (tens of ms once) rather than in the first error answer; a broken file fails here."""
    for locale in LOCALES:
        catalog(locale)


def gettext(message: str, locale: str) -> str:
    return catalog(locale).get(message, message)


def translate(message: Message | None, locale: str) -> str | None:
    if message is None:
        return None
    if isinstance(message, Text):
        return message.render(locale)
    return gettext(message, locale)


def noun(name: str, locale: str) -> str:
    """A thing's name such as ``issue_type``: its translation, else the name with spaces."""
    found = catalog(locale).get(name)
    return found if found else name.replace("_", " ")


@lru_cache(maxsize=256)
def negotiate(accept_language: str | None) -> str:
    """The locale for an ``Accept-Language`` header (RFC 9110 q-values): the first supported tag by
    preference; zh, zh-CN, zh-Hans … → zh_CN; nothing supported (or ``*``) → the default, 简体中文."""
    if not accept_language:
        return DEFAULT_LOCALE
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0 and tag:
            ranked.append((-q, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        primary = tag.split("-", 1)[0]
        if primary == "zh":
            # Traditional-script tags are not served yet; simplified is closer than English for them.
            return "zh_CN"
        if primary == "en":
            return "en"
        if tag == "*":
            return DEFAULT_LOCALE
    return DEFAULT_LOCALE


def request_locale(headers: Mapping[str, str]) -> str:
    return negotiate(headers.get("accept-language"))


def placeholders(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return {"<malformed>"}
