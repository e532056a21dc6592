"""What is sent to whom: the rules, as data (``rules.json``, versioned with the code), and their rendering.

A rule names an event type (and optionally field values it must have), an audience (resolved in
``recipients.py``), the channels in order of preference, an urgency, whether SMS is a fallback, and the
texts: zh-CN (the default) and English, with ``{placeholders}`` filled from the event and a few derived
values. Adding a notification is adding a rule; an audience kind is the only thing that needs code.
"""

from __future__ import annotations

import json
import string
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from minsheng.contracts.base import IntegrationEvent
from services.notify import config

RULES_FILE = Path(__file__).with_name("rules.json")

# ``digest``: not sent at once; the rendered text is queued as a line of the duty group's daily digest.
# ``bill``: likewise, a line of the resident's (``resident_id``) monthly happiness bill.
Audience = Literal[
    "reporter",
    "reporter_and_followers",
    "rider",
    "family",
    "alert_family",
    "duty_staff",
    "on_duty_staff",
    "grid_worker",
    "need_resident",
    "diner_family",
    "digest",
    "vote_residents",
    "bill",
]


class Text(BaseModel):
    title: str
    body: str


class WeChatTemplate(BaseModel):
    template_id: str
    data: dict[str, str]  # key (type + number, e.g. thing1) → value template


class SmsTemplate(BaseModel):
    id: str
    params: list[str]


class Rule(BaseModel):
    id: str
    event: str
    when: dict[str, Any] = {}
    audience: Audience
    channels: list[Literal["inbox", "wechat", "sms", "wecom"]]
    urgency: Literal["normal", "urgent"] = "normal"
    # never: no SMS; fallback: SMS when WeChat is impossible (no openid, no subscription, refused);
    # always: SMS as well.
    sms: Literal["never", "fallback", "always"] = "never"
    link: str | None = None
    subject: str | None = None
    wechat: WeChatTemplate | None = None
    sms_template: SmsTemplate | None = None
    text: dict[str, Text]

    @property
    def urgent(self) -> bool:
        return self.urgency == "urgent"

    def matches(self, fields: dict[str, Any]) -> bool:
        # a list in ``when`` is a choice: the field must be one of its values
        return all(fields.get(k) in v if isinstance(v, list) else fields.get(k) == v for k, v in self.when.items())


class RuleBook(BaseModel):
    version: int
    labels: dict[str, dict[str, str]] = {}
    rules: list[Rule] = Field(min_length=1)

    def for_event(self, event_type: str) -> list[Rule]:
        return [r for r in self.rules if r.event == event_type]

    @property
    def event_types(self) -> set[str]:
        return {r.event for r in self.rules}


@cache
def rulebook(path: Path = RULES_FILE) -> RuleBook:
    book = RuleBook.model_validate(json.loads(path.read_text(encoding="utf-8")))
    ids = [r.id for r in book.rules]
    if len(ids) != len(set(ids)):
        raise ValueError("rule ids must be unique")
    for r in book.rules:
        if "zh-CN" not in r.text:
            raise ValueError(f"rule {r.id} needs a zh-CN text")
        if "wechat" in r.channels and r.wechat is None:
            raise ValueError(f"rule {r.id} sends WeChat messages but names no template")
    return book


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


_FORMATTER = string.Formatter()
# personal data and logins: never in a text
_NEVER_RENDERED = frozenset({"family_contacts", "family_subjects", "worker_subject"})


def fill(template: str, values: dict[str, Any]) -> str:
    return _FORMATTER.vformat(template, (), _Blank(values)).strip()


_OUTCOMES = {
    "zh-CN": {"visited": "已见到本人，情况正常", "not_home": "未见到本人，社区将继续跟进", "refused": "本人婉拒了看望"},
    "en": {
        "visited": "seen in person, all right",
        "not_home": "not at home; the community follows up",
        "refused": "declined the visit",
    },
}


# An assignment published before IssueAssigned carried ``department_names`` names no department by name: the
# text says "the department responsible" rather than show a resident the catalogue's codes.
_UNNAMED_DEPARTMENTS = {"zh-CN": "相关部门", "en": "the department responsible"}


def _departments_label(event: IntegrationEvent, locale: str) -> str:
    """The departments an issue went to, by name in the reader's language (IssueAssigned's
    ``department_names``), joined as the language joins a list."""
    names = [n for n in getattr(event, "department_names", None) or [] if n.name_zh and n.name_en]
    if not names:
        return _UNNAMED_DEPARTMENTS["en" if locale == "en" else "zh-CN"]
    if locale == "en":
        return ", ".join(n.name_en for n in names)
    return "、".join(n.name_zh for n in names)


def context(event: IntegrationEvent, locale: str) -> dict[str, Any]:
    """The event's fields (dates rendered simply) plus derived, localised values."""
    s = config.get()
    labels = rulebook().labels.get(locale) or rulebook().labels.get("zh-CN", {})
    values: dict[str, Any] = {}
    for name, value in event.model_dump().items():
        if name in _NEVER_RENDERED:
            continue
        if isinstance(value, datetime):
            values[name] = value.astimezone(s.tz).strftime("%Y-%m-%d %H:%M")
        elif isinstance(value, date):
            values[name] = value.isoformat()
        elif value is None:
            values[name] = ""
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            values[name] = "、".join(value) if locale == "zh-CN" else ", ".join(value)
        else:
            values[name] = value
    moments = ("occurred_at", "posted_at", "completed_at", "claimed_at", "raised_at", "delivered_at", "cancelled_at")
    occurred = next((getattr(event, f) for f in moments if isinstance(getattr(event, f, None), datetime)), None)
    if occurred is not None:
        local = occurred.astimezone(s.tz)
        values["time"] = local.strftime("%Y-%m-%d %H:%M")
        values["date"] = local.date().isoformat()
    category = values.get("category")
    if category:
        values["category_label"] = labels.get(str(category), str(category))
    for key, source in (
        ("deadline_label", "deadline"),
        ("cause_label", "cause_type"),
        ("task_label", "task_type"),
        ("slot_label", "slot"),
    ):
        if values.get(source):
            values[key] = labels.get(str(values[source]), str(values[source]))
    if "departments" in values:
        values["departments_label"] = _departments_label(event, locale)
    if isinstance(values.get("amount"), int):
        values["amount_abs"] = abs(values["amount"])
    if values.get("outcome"):
        values["outcome_label"] = _OUTCOMES.get(locale, _OUTCOMES["zh-CN"]).get(
            str(values["outcome"]), str(values["outcome"])
        )
    results = values.get("results")
    if isinstance(results, list):  # a closed vote: "同意 168 票、不同意 44 票"
        values["results_zh"] = "、".join(f"{r['label']} {r['votes']} 票" for r in results)
        values["results_en"] = ", ".join(f"{r['label']} {r['votes']}" for r in results)
    redirect = values.get("redirect_to")
    values["redirect_zh"] = f"请前往{redirect}办理。" if redirect else ""
    values["redirect_en"] = f"Please go to {redirect}." if redirect else ""
    values.setdefault("note", "")
    return values


def render(rule: Rule, values: dict[str, Any], locale: str) -> Text:
    text = rule.text.get(locale) or rule.text["zh-CN"]
    return Text(title=fill(text.title, values), body=fill(text.body, values))


# --- WeChat subscribe-message data: each key's type sets what its value may hold ----------------------------

_LIMITS = {
    "thing": 20,
    "number": 32,
    "letter": 32,
    "symbol": 5,
    "character_string": 32,
    "phone_number": 17,
    "car_number": 8,
    "name": 10,
    "phrase": 5,
    "time": 40,
    "date": 40,
    "amount": 12,
}


def field_type(key: str) -> str:
    return key.rstrip("0123456789")


def wechat_value(key: str, value: str) -> str:
    """Fit a value to its field type's rule (length above all: longer values make WeChat answer 47003)."""
    kind = field_type(key)
    value = "".join(ch for ch in value if ch >= " ")  # no control characters
    limit = _LIMITS.get(kind)
    if kind == "number":
        value = "".join(ch for ch in value if ch.isdigit() or ch in ".-") or "0"
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "…" if kind == "thing" else value[:limit]
    return value


def wechat_data(rule: Rule, values: dict[str, Any]) -> dict[str, dict[str, str]]:
    assert rule.wechat is not None
    return {key: {"value": wechat_value(key, fill(template, values))} for key, template in rule.wechat.data.items()}
