"""bench/SOAK.md: when, where and how the soak ran, and each count it promises."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.soak_checks import Verdict
from bench.soak_shopper import CATALOG_SCREENS, Tally

if TYPE_CHECKING:
    from bench.soak import Webhooks


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = sys.version.split()[0]
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPU ({cpu}), Python {python}"


def _screens(tally: Tally) -> list[str]:
    rows = ["| screen | requests | 5xx | no answer | GraphQL errors / 4xx |", "|---|---:|---:|---:|---:|"]
    for screen in sorted(tally.requests, key=lambda s: (s not in CATALOG_SCREENS, s)):
        mark = " (catalog)" if screen in CATALOG_SCREENS else ""
        rows.append(
            f"| {screen}{mark} | {tally.requests[screen]} | {tally.server_errors[screen]} | "
            f"{tally.transport_errors[screen]} | {tally.graphql_errors[screen]} |"
        )
    return rows


def write_report(
    path: Path,
    *,
    args: argparse.Namespace,
    commit: str,
    tally: Tally,
    verdict: Verdict,
    webhooks: Webhooks,
    faults: list[str],
    elapsed: float,
    exits: dict[str, int | None],
) -> str:
    """Write the markdown report to `path`; returns its text."""
    v = verdict
    total = sum(tally.requests.values())
    user_errors = ", ".join(f"{k} {n}" for k, n in sorted(tally.user_errors.items())) or "none"
    flash = ", ".join(f"{k} {n}" for k, n in sorted(tally.flash.items())) or "none"
    lines = [
        "# Load-and-fault soak",
        "",
        f"**{'PASS' if v.passed else 'FAIL'}** — {datetime.now(UTC):%Y-%m-%d %H:%M UTC}, commit `{commit}`.",
        "",
        f"- Machine: {_machine()}",
        f"- Command: `make soak` (`python -m bench.soak {shlex.join(sys.argv[1:])}`)",
        f"- Load: {args.shoppers} concurrent shoppers for {elapsed:.1f} s ({total} requests, "
        f"{total / elapsed:.0f}/s): home → category → product → add to cart → checkout preview → "
        "place order → pay, 15% of loops a flash-sale attempt instead; signed ERP inventory webhooks "
        "every 0.5 s, each batch delivered twice.",
        "- System: `bff serve --workers 2` and one `bff worker` on a fresh PostgreSQL database, a private "
        "Redis, the ERP, CRM and WeChat (Pay) simulators as separate processes.",
        f"- Faults: {'; '.join(faults)} (ERP by SIGKILL, Redis by SIGKILL, both restarted empty).",
        "",
        "## Verdict",
        "",
        "| promise | count |",
        "|---|---:|",
        f"| 5xx on catalog screens (must be 0) | {v.catalog_5xx} |",
        f"| any failure on catalog screens (5xx, no answer, GraphQL error) | {v.catalog_failures} |",
        f"| orders answered to shoppers | {v.orders_answered} |",
        f"| orders in the database | {v.orders_in_db} |",
        f"| orders lost: answered, not in the database (must be 0) | {v.orders_lost} |",
        f"| orders duplicated: >1 per idempotency key (must be 0) | {v.orders_duplicated} |",
        f"| orders placed whose answer never arrived (retries exhausted) | {v.orders_unanswered} |",
        f"| flash sale: stock / sold in the database / units shoppers were told they got | "
        f"{v.flash_stock} / {v.flash_sold} / {v.flash_told_bought} |",
        f"| flash-sale oversell (must be 0) | {v.flash_oversold} |",
        f"| SKUs oversold: reserved > stock or stock < 0 (must be 0) | {v.sku_oversold} |",
        f"| orders paid by the payer in the WeChat Pay simulator | {len(tally.payers)} |",
        f"| payment notifications acknowledged by the BFF | {v.payments_acknowledged} |",
        f"| … applied once: order paid, one Payment row | {v.payments_applied_once} |",
        f"| … not applied (must be 0) | {v.payments_not_applied} |",
        f"| … applied twice (must be 0) | {v.payments_duplicated} |",
        f"| ERP webhook events accepted | {v.webhooks_accepted} |",
        f"| … applied exactly once | {v.webhooks_applied_once} |",
        f"| … processed once as stale (a newer version was already applied) | {v.webhooks_stale} |",
        f"| … not applied (must be 0) | {v.webhooks_not_applied} |",
        f"| … applied twice (must be 0) | {v.webhooks_duplicated} |",
        f"| SKUs whose stock version is not the ERP's last (must be 0) | {v.webhook_skus_behind} |",
        "",
        "## Details",
        "",
        f"- ERP webhook batches: {webhooks.batches} sent, redeliveries answered as duplicates "
        f"{webhooks.redelivered_as_duplicate}, "
        f"redeliveries not recognised {webhooks.redelivered_applied_again}, "
        f"refused (retried) {webhooks.refused}, of which 5xx {webhooks.server_errors}, "
        f"no answer {webhooks.transport_errors}.",
        f"- Flash-sale attempts: {flash}.",
        f"- Payment notifications still unacknowledged after 5 deliveries: {tally.unacknowledged}.",
        f"- userErrors: {user_errors}.",
        "- Exit codes on SIGTERM at the end: "
        + ", ".join(f"{name} {code}" for name, code in exits.items())
        + ".",
        "",
        "### Per screen",
        "",
        *_screens(tally),
        "",
    ]
    text = "\n".join(lines)
    path.write_text(text)
    return text
