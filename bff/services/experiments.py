"""A/B tests: definitions and their lifecycle, deterministic variant assignment, and results.

An experiment goes DRAFT → RUNNING → STOPPED, one way. Its variants can be edited only while it is a
draft: once it runs, changing a weight would move people who already saw one variant to another.
While RUNNING each identity gets `assign_variant`; a DRAFT or STOPPED experiment shows everyone the
control (the first variant).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError

from bff.models.experiment import Experiment
from bff.services.errors import BusinessError

DRAFT, RUNNING, STOPPED = "DRAFT", "RUNNING", "STOPPED"
SCREENS = ("HOME", "CATEGORY", "SEARCH", "PRODUCT", "CART", "CHECKOUT", "ORDERS", "MEMBER", "CAMPAIGN")
KEY_PATTERN = re.compile(r"[a-z0-9_-]{2,64}")
# Variant keys are stored in analytics_experiment_visitor.variant (32 characters).
VARIANT_KEY_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
MIN_VARIANTS, MAX_VARIANTS = 2, 5
NAME_MAX_LENGTH = 128


def assign_variant(experiment_key: str, identity: str, variants: Sequence[tuple[str, int]]) -> str:
    """The variant an identity (visitor key) gets: a stable hash of key and identity, split by weight."""
    total = sum(weight for _, weight in variants)
    if total <= 0:
        raise ValueError("an experiment needs a variant with a positive weight")
    digest = hashlib.sha256(f"{experiment_key}:{identity}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for name, weight in variants:
        if point < weight:
            return name
        point -= weight
    raise AssertionError("unreachable: point < total")


@dataclass(frozen=True)
class Definition:
    """What an operator defines: the first variant is the control."""

    key: str
    name: str
    screen: str
    variants: tuple[tuple[str, int], ...]


class InvalidExperiment(BusinessError):
    """The definition breaks one or more rules; `problems` holds (input field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("INVALID_INPUT", problems[0][1], problems[0][0])
        self.problems = problems


def _variant_problems(variants: Sequence[tuple[str, int]]) -> list[tuple[str, str]]:
    if not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        return [("variants", f"实验须有 {MIN_VARIANTS}-{MAX_VARIANTS} 个分组")]
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, (key, weight) in enumerate(variants):
        if not VARIANT_KEY_PATTERN.fullmatch(key):
            problems.append((f"variants[{i}].key", "分组标识须为 1-32 位小写字母、数字、_ 或 -"))
        elif key in seen:
            problems.append((f"variants[{i}].key", f"分组标识 {key} 重复"))
        seen.add(key)
        if weight < 0:
            problems.append((f"variants[{i}].weight", "权重不能为负数"))
    if not problems and sum(weight for _, weight in variants) <= 0:
        problems.append(("variants", "权重之和须大于 0"))
    return problems


def problems_of(definition: Definition) -> list[tuple[str, str]]:
    """Every rule the definition breaks, as (input field, message); empty when it is valid."""
    problems: list[tuple[str, str]] = []
    if not KEY_PATTERN.fullmatch(definition.key):
        problems.append(("key", "实验标识须为 2-64 位小写字母、数字、_ 或 -"))
    if not definition.name.strip() or len(definition.name) > NAME_MAX_LENGTH:
        problems.append(("name", f"实验名称不能为空，且不超过 {NAME_MAX_LENGTH} 字"))
    if definition.screen not in SCREENS:
        problems.append(("screen", f"页面须为 {', '.join(SCREENS)} 之一"))
    return problems + _variant_problems(definition.variants)


def _stored_variants(definition: Definition) -> list[dict[str, object]]:
    return [{"key": key, "weight": weight} for key, weight in definition.variants]


async def create(definition: Definition, operator: str) -> Experiment:
    """Create a DRAFT experiment; INVALID_INPUT for a bad definition, DUPLICATE for a taken key."""
    problems = problems_of(definition)
    if problems:
        raise InvalidExperiment(problems)
    if await Experiment.exists(key=definition.key):
        raise BusinessError("DUPLICATE", f"实验标识 {definition.key} 已存在", "key")
    try:
        return await Experiment.create(
            key=definition.key,
            name=definition.name.strip(),
            screen=definition.screen,
            variants=_stored_variants(definition),
            status=DRAFT,
            created_by=operator,
        )
    except IntegrityError as exc:  # another operator took the key in between
        raise BusinessError("DUPLICATE", f"实验标识 {definition.key} 已存在", "key") from exc


async def _refuse(key: str, wanted: str, action: str) -> BusinessError:
    """Why a conditional update of `key` touched no row: NOT_FOUND, or INVALID_STATE."""
    experiment = await Experiment.get_or_none(key=key)
    if experiment is None:
        return BusinessError("NOT_FOUND", f"实验 {key} 不存在", "key")
    return BusinessError(
        "INVALID_STATE", f"实验 {key} 为 {experiment.status}，只有 {wanted} 状态可以{action}", "key"
    )


async def update_draft(definition: Definition) -> Experiment:
    """Replace a DRAFT's name, screen and variants; a started experiment's variants are frozen."""
    problems = [p for p in problems_of(definition) if p[0] != "key"]
    if problems:
        raise InvalidExperiment(problems)
    # One conditional UPDATE, so a concurrent start can never leave a running experiment edited.
    changed = await Experiment.filter(key=definition.key, status=DRAFT).update(
        name=definition.name.strip(), screen=definition.screen, variants=_stored_variants(definition)
    )
    if not changed:
        raise await _refuse(definition.key, DRAFT, "修改（已开始的实验分组不可更改）")
    return await Experiment.get(key=definition.key)


async def start(key: str) -> Experiment:
    """DRAFT → RUNNING: from now on, identities are split by the weights."""
    now = datetime.now(UTC)
    if not await Experiment.filter(key=key, status=DRAFT).update(status=RUNNING, started_at=now):
        raise await _refuse(key, DRAFT, "开始")
    return await Experiment.get(key=key)


async def stop(key: str) -> Experiment:
    """RUNNING → STOPPED: everyone sees the control again; results stay readable."""
    now = datetime.now(UTC)
    if not await Experiment.filter(key=key, status=RUNNING).update(status=STOPPED, stopped_at=now):
        raise await _refuse(key, RUNNING, "停止")
    return await Experiment.get(key=key)


async def page(status: str | None, first: int, after_id: int | None) -> list[Experiment]:
    """Up to first + 1 experiments, newest first (the extra one says whether there is a next page)."""
    query = Experiment.all()
    if status is not None:
        query = query.filter(status=status)
    if after_id is not None:
        query = query.filter(id__lt=after_id)
    return await query.order_by("-id").limit(first + 1)


async def count(status: str | None) -> int:
    """How many experiments there are (with that status, when given)."""
    query = Experiment.all()
    return await (query.filter(status=status) if status is not None else query).count()


def variants_of(experiment: Experiment) -> list[tuple[str, int]]:
    """The stored variants as (key, weight), control first."""
    return [(str(v["key"]), _weight(v["weight"])) for v in experiment.variants]


def _weight(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"a stored variant weight must be an integer, got {value!r}")
    return value


def served_variant(experiment: Experiment, identity: str) -> str:
    """The variant the identity sees now: its assignment while RUNNING, else the control."""
    variants = variants_of(experiment)
    if experiment.status != RUNNING:
        return variants[0][0]
    return assign_variant(experiment.key, identity, variants)


async def find(key: str) -> Experiment | None:
    """The experiment with that key, or None."""
    return await Experiment.get_or_none(key=key)
