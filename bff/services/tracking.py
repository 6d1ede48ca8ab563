"""Behaviour tracking ingestion: validate a batch of mini-program events and store the good ones.

A batch costs a constant number of statements whatever its size: one select for already stored
client ids, one for the products and one for the experiments it names, then one transaction with a
bulk insert of events, the dirty-day marks and the experiment exposures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import cast

import orjson
from tortoise.transactions import in_transaction

from bff.ids import decode_id
from bff.models.analytics import ExperimentVisitor, TrackedEvent
from bff.models.catalog import Product
from bff.models.experiment import Experiment
from bff.services import experiments
from bff.services.analytics_sql import Sql
from bff.services.errors import BusinessError
from bff.services.rollups import mark_dirty, visitor_key
from bff.services.search import normalise_keyword
from bff.services.shop_time import shop_day

MAX_BATCH = 100
EVENT_TYPES = frozenset(
    "page_view product_exposure product_click search add_to_cart checkout_start share "
    "experiment_exposure".split()
)
_NEEDS_PRODUCT = frozenset({"product_exposure", "product_click", "add_to_cart"})
# Column lengths of analytics_event / analytics_experiment_visitor.
_ID_MAX = 64
_PAGE_MAX = 128
_VARIANT_MAX = 32
PROPERTIES_MAX_BYTES = 2048
PROPERTIES_MAX_KEYS = 20
_PROPERTY_KEY_MAX = 64
# Clocks on phones drift and events queue up offline, but not for ever.
MAX_CLOCK_AHEAD = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)

# 个人信息保护法: events carry behaviour, never who the person is. A key is personal when one of its
# words (or two adjacent words: open+id, id+card, real+name) is one of these; "name" alone only as
# the whole key, so productName or pageName stay allowed.
_PERSONAL_WORDS = frozenset(
    "phone phoneno phonenumber mobile tel telephone address email mail openid unionid idcard idno "
    "idnumber realname fullname username nickname birthday password".split()
)
_PERSONAL_KEYS = _PERSONAL_WORDS | {"name"}
_PERSONAL_CJK = ("手机", "电话", "姓名", "名字", "地址", "身份证", "邮箱", "生日")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Values that are a mainland mobile number or an e-mail address are personal whatever their key.
_PERSONAL_VALUE = re.compile(r"^\+?(?:86)?1[3-9]\d{9}$|^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


@dataclass(frozen=True)
class EventIn:
    """One event as the client sent it (ids opaque, time an ISO 8601 string)."""

    client_event_id: str
    anonymous_id: str
    session_id: str
    type: str
    client_time: str
    page: str | None = None
    product_id: str | None = None
    keyword: str | None = None
    result_count: int | None = None
    experiment_key: str | None = None
    variant: str | None = None
    properties: object = None


@dataclass(frozen=True)
class Rejection:
    """Why the event at `index` of the batch was not stored; `code` is a TrackRejectCode name."""

    index: int
    client_event_id: str
    code: str
    message: str


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    rejected: list[Rejection]


class Invalid(Exception):
    """One event breaks a rule; `code` is a TrackRejectCode name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CheckedEvent:
    """An event that passed the checks needing no database: parsed and normalised."""

    index: int
    client_event_id: str
    anonymous_id: str
    session_id: str
    type: str
    occurred_at: datetime
    page: str
    product_id: int | None
    product_given: bool
    keyword: str | None
    result_count: int | None
    experiment_key: str | None
    variant: str | None
    properties: dict[str, object]


def parse_client_time(raw: str, now: datetime) -> datetime:
    """The UTC moment of an ISO 8601 client time, within 7 days back and 5 minutes ahead of now."""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError as exc:
        raise Invalid("INVALID_TIME", "clientTime 须为 ISO 8601 时间") from exc
    if moment.tzinfo is None:
        raise Invalid("INVALID_TIME", "clientTime 须带时区（如 Z 或 +08:00）")
    moment = moment.astimezone(UTC)
    if moment > now + MAX_CLOCK_AHEAD:
        raise Invalid("INVALID_TIME", "clientTime 超前服务器时间 5 分钟以上")
    if moment < now - MAX_AGE:
        raise Invalid("INVALID_TIME", "clientTime 早于 7 天前")
    return moment


def _key_words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


@lru_cache(maxsize=4096)  # an app sends the same few keys over and over
def is_personal_key(key: str) -> bool:
    """True when a property key names personal data (phone, address, openid, realName…)."""
    words = _key_words(key)
    if "".join(words) in _PERSONAL_KEYS or any(term in key for term in _PERSONAL_CJK):
        return True
    pairs = (a + b for a, b in pairwise(words))
    return any(w in _PERSONAL_WORDS for w in (*words, *pairs))


def check_properties(properties: object) -> dict[str, object]:
    """A flat object of at most 20 scalar values and 2 KB of JSON, with no personal data."""
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise Invalid("TOO_LARGE", "properties 须为扁平对象")
    if len(properties) > PROPERTIES_MAX_KEYS:
        raise Invalid("TOO_LARGE", f"properties 最多 {PROPERTIES_MAX_KEYS} 个键")
    for key, value in properties.items():
        if len(key) > _PROPERTY_KEY_MAX:
            raise Invalid("TOO_LARGE", f"properties 的键最长 {_PROPERTY_KEY_MAX} 个字符")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise Invalid("TOO_LARGE", f"properties.{key} 须为字符串、数字、布尔或 null")
        if is_personal_key(key) or (isinstance(value, str) and _PERSONAL_VALUE.match(value.strip())):
            raise Invalid("PERSONAL_DATA", f"properties.{key} 含个人信息，不得上报")
    if len(orjson.dumps(properties)) > PROPERTIES_MAX_BYTES:
        raise Invalid("TOO_LARGE", f"properties 超过 {PROPERTIES_MAX_BYTES} 字节")
    return dict(properties)


def _bounded(value: str | None, field: str, limit: int, required: bool) -> str:
    text = (value or "").strip()
    if required and not text:
        raise Invalid("MISSING_FIELD", f"缺少 {field}")
    if len(text) > limit:
        raise Invalid("TOO_LARGE", f"{field} 最长 {limit} 个字符")
    return text


def check_identity(event: EventIn) -> tuple[str, str]:
    """The (anonymous id, client event id) an event is deduplicated under."""
    client_id = _bounded(event.client_event_id, "clientEventId", _ID_MAX, required=True)
    anonymous_id = _bounded(event.anonymous_id, "anonymousId", _ID_MAX, required=True)
    return anonymous_id, client_id


def check_event(index: int, event: EventIn, now: datetime) -> CheckedEvent:
    """Every rule that needs no database; raises Invalid with the first one broken."""
    anonymous_id, client_id = check_identity(event)
    if event.type not in EVENT_TYPES:
        raise Invalid("INVALID_TYPE", f"未知事件类型 {event.type[:32]!r}")
    session_id = _bounded(event.session_id, "sessionId", _ID_MAX, required=True)
    page = _bounded(event.page, "page", _PAGE_MAX, required=event.type == "page_view")
    product_given = bool(event.product_id)
    if event.type in _NEEDS_PRODUCT and not product_given:
        raise Invalid("MISSING_FIELD", f"{event.type} 须带 productId")
    keyword: str | None = None
    result_count: int | None = None
    if event.type == "search":
        keyword = normalise_keyword(event.keyword or "")
        if not keyword:
            raise Invalid("MISSING_FIELD", "search 须带 keyword")
        if event.result_count is None or event.result_count < 0:
            raise Invalid("MISSING_FIELD", "search 须带 resultCount（≥ 0）")
        result_count = event.result_count
    experiment_key: str | None = None
    variant: str | None = None
    if event.type == "experiment_exposure":
        experiment_key = _bounded(event.experiment_key, "experimentKey", _ID_MAX, required=True)
        variant = _bounded(event.variant, "variant", _VARIANT_MAX, required=False) or None
    occurred_at = parse_client_time(event.client_time, now)
    properties = check_properties(event.properties)
    return CheckedEvent(
        index=index,
        client_event_id=client_id,
        anonymous_id=anonymous_id,
        session_id=session_id,
        type=event.type,
        occurred_at=occurred_at,
        page=page,
        product_id=decode_id(event.product_id, "Product") if event.product_id else None,
        product_given=product_given,
        keyword=keyword,
        result_count=result_count,
        experiment_key=experiment_key,
        variant=variant,
        properties=properties,
    )


async def _stored_keys(keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    wanted = set(keys)
    if not wanted:
        return set()
    rows = await TrackedEvent.filter(
        anonymous_id__in={a for a, _ in wanted}, client_event_id__in={c for _, c in wanted}
    ).values_list("anonymous_id", "client_event_id")
    # The select is a cross product of both id sets; keep only the pairs that were asked about.
    return {(str(a), str(c)) for a, c in rows} & wanted


async def _known_products(events: Sequence[CheckedEvent]) -> set[int]:
    ids = {e.product_id for e in events if e.product_id is not None}
    if not ids:
        return set()
    return {pk for (pk,) in await Product.filter(id__in=ids).values_list("id")}


async def _running_experiments(events: Sequence[CheckedEvent]) -> dict[str, Experiment]:
    keys = {e.experiment_key for e in events if e.experiment_key is not None}
    if not keys:
        return {}
    return {e.key: e for e in await Experiment.filter(key__in=keys, status=experiments.RUNNING)}


def _assigned_variant(event: CheckedEvent, running: dict[str, Experiment], member_id: int | None) -> str:
    """The server's variant for this visitor; raises Invalid when the experiment or variant is wrong."""
    assert event.experiment_key is not None
    experiment = running.get(event.experiment_key)
    if experiment is None:
        raise Invalid("UNKNOWN_EXPERIMENT", f"实验 {event.experiment_key} 不存在或未在进行中")
    assigned = experiments.served_variant(experiment, visitor_key(member_id, event.anonymous_id))
    if event.variant is not None and event.variant != assigned:
        raise Invalid("VARIANT_MISMATCH", f"该访客在实验 {event.experiment_key} 的分组是 {assigned}")
    return assigned


EVENT_COLUMNS = (
    "client_event_id",
    "anonymous_id",
    "member_id",
    "session_id",
    "type",
    "page",
    "product_id",
    "keyword",
    "result_count",
    "properties",
    "occurred_at",
    "received_at",
    "day",
)


def _row(event: CheckedEvent, member_id: int | None, variant: str | None) -> tuple[object, ...]:
    """The event's column values in `EVENT_COLUMNS` order (times and day made SQL-ready on insert)."""
    properties = event.properties
    if variant is not None:
        # The server's assignment is what the experiment report counts, whatever the client claimed.
        properties = {**properties, "experimentKey": event.experiment_key, "variant": variant}
    return (
        event.client_event_id,
        event.anonymous_id,
        member_id,
        event.session_id,
        event.type,
        event.page,
        event.product_id,
        event.keyword,
        event.result_count,
        orjson.dumps(properties).decode(),
        event.occurred_at,
        shop_day(event.occurred_at),
    )


async def _insert_events(sql: Sql, rows: Sequence[tuple[object, ...]], now: datetime) -> None:
    """One multi-row INSERT for the batch; a row already stored (a concurrent retry) is skipped.

    Hand-written rather than `bulk_create`: building a model instance per event was half the CPU of a
    batch, and the column list is fixed here.
    """
    width = len(EVENT_COLUMNS)
    values: list[object] = []
    groups = []
    for row in rows:
        *head, occurred_at, day = row
        assert isinstance(occurred_at, datetime) and isinstance(day, date)
        values += [*head, sql.moment(occurred_at), sql.moment(now), sql.day(day)]
        start = len(values) - width
        marks = [f"${start + i + 1}" for i in range(width)]
        if sql.postgres:
            marks[9] = f"CAST({marks[9]} AS JSONB)"  # properties (SQLite stores the JSON text)
        groups.append(f"({', '.join(marks)})")
    columns = ", ".join(EVENT_COLUMNS)
    await sql.execute(
        f"INSERT INTO analytics_event ({columns}) VALUES {', '.join(groups)} "  # nosec B608
        "ON CONFLICT (anonymous_id, client_event_id) DO NOTHING",
        *values,
    )


def _exposures(rows: Sequence[tuple[CheckedEvent, str]], member_id: int | None) -> list[ExperimentVisitor]:
    """One row per (experiment, visitor): the earliest exposure of the batch."""
    first: dict[tuple[str, str], tuple[CheckedEvent, str]] = {}
    for event, variant in rows:
        assert event.experiment_key is not None
        key = (event.experiment_key, visitor_key(member_id, event.anonymous_id))
        if key not in first or event.occurred_at < first[key][0].occurred_at:
            first[key] = (event, variant)
    return [
        ExperimentVisitor(
            experiment_key=experiment_key,
            variant=variant,
            visitor_key=visitor,
            member_id=member_id,
            first_exposed_at=event.occurred_at,
        )
        for (experiment_key, visitor), (event, variant) in first.items()
    ]


async def ingest(
    events: Sequence[EventIn], member_id: int | None, now: datetime | None = None
) -> IngestResult:
    """Store a batch of events for a visitor (member_id from the token, never from the payload).

    Each bad event is rejected with its reason while the others are kept; an event whose
    (anonymousId, clientEventId) is already stored, or accepted earlier in the batch, is a duplicate.
    """
    if len(events) > MAX_BATCH:
        raise BusinessError("BATCH_TOO_LARGE", f"一次最多上报 {MAX_BATCH} 个事件", "events")
    now = now or datetime.now(UTC)
    rejected: list[Rejection] = []

    def reject(index: int, exc: Invalid) -> None:
        rejected.append(Rejection(index, events[index].client_event_id[:_ID_MAX], exc.code, exc.message))

    identities: dict[int, tuple[str, str]] = {}
    for index, event in enumerate(events):
        try:
            identities[index] = check_identity(event)
        except Invalid as exc:
            reject(index, exc)
    # Checked before the content rules: a retried batch reports what was stored as duplicates even
    # when, say, its product has since been deleted.
    stored = await _stored_keys(identities.values())
    duplicates = sum(1 for key in identities.values() if key in stored)
    checked: list[CheckedEvent] = []
    for index in identities:
        if identities[index] in stored:
            continue
        try:
            checked.append(check_event(index, events[index], now))
        except Invalid as exc:
            reject(index, exc)

    products = await _known_products(checked)
    running = await _running_experiments(checked)
    rows: list[tuple[object, ...]] = []
    exposures: list[tuple[CheckedEvent, str]] = []
    taken: set[tuple[str, str]] = set()
    for item in checked:
        try:
            if item.product_given and item.product_id not in products:
                raise Invalid("UNKNOWN_PRODUCT", "商品不存在")
            variant = _assigned_variant(item, running, member_id) if item.experiment_key else None
        except Invalid as exc:
            reject(item.index, exc)
            continue
        key = (item.anonymous_id, item.client_event_id)
        if key in taken:
            duplicates += 1
            continue
        taken.add(key)
        rows.append(_row(item, member_id, variant))
        if variant is not None:
            exposures.append((item, variant))

    if rows:
        async with in_transaction() as connection:
            # Conflicts are ignored, not raised: a concurrent retry of the same batch stores each once.
            await _insert_events(Sql(connection), rows, now)
            if exposures:
                # The first exposure wins: a later one of the same visitor leaves the row as it is.
                await ExperimentVisitor.bulk_create(_exposures(exposures, member_id), ignore_conflicts=True)
            # Last: the mark's row lock, which concurrent batches of the same day wait on, is held
            # only until the commit that follows.
            await mark_dirty(cast(date, r[-1]) for r in rows)
    rejected.sort(key=lambda r: r.index)
    return IngestResult(accepted=len(rows), duplicates=duplicates, rejected=rejected)
