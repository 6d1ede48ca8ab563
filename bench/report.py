"""bench/RESULTS.md: machine, method, the tables, the ratios, and PASS/FAIL against each target."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import chart

VARIANTS = ("B0", "B1", "G0", "G1", "G2")


def machine() -> str:
    """nproc, CPU model, memory and kernel."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return f"{os.cpu_count()} CPUs ({cpu}), {kib / 1024 / 1024:.1f} GiB RAM, Linux {platform.release()}"


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _rps(r: dict[str, Any], key: str) -> float | None:
    found = r["load"].get(key)
    return found["rps"] if found else None


def _screen_table(r: dict[str, Any], screen: str) -> list[str]:
    rows = [
        "| variant | max req/s | p50 ms | p95 ms | p99 ms | at req/s | SQL/req | Redis/req | bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in VARIANTS:
        load, lat = r["load"].get(f"{v}/{screen}"), r["latency"].get(f"{v}/{screen}")
        if load is None or lat is None:
            continue
        probe = r["probe"].get(f"{v}/{screen}", {})
        sql = r.get("sql", {}).get(v, {}).get(screen)
        sql_text = "0" if v == "B0" else ("–" if sql is None else _f(sql[1]))
        failures = load["failures"] + lat["failures"]
        rows.append(
            f"| {v} | {_f(load['rps'], 0)}{f' ({failures} failed)' if failures else ''}"
            f" | {_f(lat['p50'], 2)}"
            f" | {_f(lat['p95'], 2)} | {_f(lat['p99'], 2)} | {_f(lat['rps'], 0)} | {sql_text}"
            f" | {_f(probe.get('redis'))} | {probe.get('bytes', '–')} |"
        )
    return rows


_ERP_LABELS = {
    "product": "product detail",
    "checkout_preview": "checkout preview",
    "place_order": "placeOrder",
}


def _reco(r: dict[str, Any]) -> tuple[str, bool | None, str]:
    """The offline hit rate: the personal lists must find the held-out purchase more often than popularity."""
    found = r.get("others", {}).get("reco_eval", {})
    figures = found.get("figures")
    if not figures:
        return ("recommendations beat popularity (hit rate@20)", None, found.get("skipped", "not run"))
    personal, popular = figures["hit_rate_personal"], figures["hit_rate_popularity"]
    return (
        f"recommendations beat popularity (hit rate@{figures['k']})",
        personal > popular,
        f"personal {personal:.3f} (without CRM {figures['hit_rate_personal_without_crm']:.3f}) against "
        f"popularity {popular:.3f} ({personal / popular:.1f}×), {figures['evaluated_members']} members "
        f"evaluated on a generated log of {figures['training_interactions']:,} interactions",
    )


def _targets(r: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    found: list[tuple[str, bool | None, str]] = []
    sql = r.get("sql", {})
    g1, small = sql.get("G1", {}), sql.get("G1small", {})
    if g1 and small:
        # Warm counts: the first (cold) request of category_20 also fills the caches category_100 reuses.
        # Judged on the warm counts, the per-request cost; a cold-only difference is shown, not hidden.
        page = g1["category_20"][1] == g1["category_100"][1]
        grows = [s for s in g1 if s in small and g1[s][1] != small[s][1]]
        cold = [
            f"{s} {small[s][0]:.0f} → {g1[s][0]:.0f}" for s in g1 if s in small and g1[s][0] != small[s][0]
        ]
        detail = f"category 20 vs 100 items: {g1['category_20'][1]} vs {g1['category_100'][1]} (warm)"
        detail += "; 1k vs 100k products, warm: " + (
            f"differs on {', '.join(grows)}" if grows else "equal on every screen"
        )
        if cold:
            detail += f" (first, cold request differs: {', '.join(cold)})"
        found.append(
            (
                "SQL statements per request (warm) do not grow with page size or catalog size",
                page and not grows,
                detail,
            )
        )
    for screens, floor in (
        (("product", "cart"), 0.6),
        (("home_anon", "home_member", "category_20", "category_100"), 0.5),
    ):
        for s in screens:
            ratio = _ratio(_rps(r, f"G1/{s}"), _rps(r, f"B1/{s}"))
            found.append(
                (
                    f"G1/B1 ≥ {floor} on {r['screens'][s]}",
                    None if ratio is None else ratio >= floor,
                    f"G1/B1 = {_f(ratio, 2)}",
                )
            )
    hits = [s for s in r["screens"] if "HIT" in r["probe"].get(f"G2/{s}", {}).get("x_cache", [])]
    for s in hits:
        ratio = _ratio(_rps(r, f"G2/{s}"), _rps(r, f"B0/{s}"))
        found.append(
            (
                f"G2 hits ≥ 0.7 × B0 on {r['screens'][s]}",
                None if ratio is None else ratio >= 0.7,
                f"G2/B0 = {_f(ratio, 2)}",
            )
        )
    if not hits:
        found.append(
            ("G2 hits ≥ 0.7 × B0", False, "no response carried X-Cache: HIT (is the response cache on?)")
        )
    for s, label in (("category_20", "category"), ("search", "search")):
        measured = r.get("growth", {}).get(s, {})
        big, little = measured.get("big", {}).get("p99"), measured.get("small", {}).get("p99")
        ratio = _ratio(big, little)
        found.append(
            (
                f"{label} p99 grows < 1.5× from 1,000 to 100,000 products",
                None if ratio is None else ratio < 1.5,
                f"p99 {_f(little, 2)} ms → {_f(big, 2)} ms ({_f(ratio, 2)}×) at"
                f" {_f(measured.get('target_rate'), 0)} req/s (half G1's max on 100,000)",
            )
        )
    erp = r.get("erp", {})
    for s in ("product", "checkout_preview", "place_order"):
        healthy, slow = erp.get(f"healthy/{s}", {}).get("p99"), erp.get(f"slow/{s}", {}).get("p99")
        ratio = _ratio(slow, healthy)
        found.append(
            (
                f"{_ERP_LABELS[s]} p99 with a 2 s ERP ≤ 1.2× healthy",
                None if ratio is None else ratio <= 1.2,
                f"p99 {_f(healthy, 2)} ms healthy → {_f(slow, 2)} ms slow ({_f(ratio, 2)}×)",
            )
        )
    ingest = r.get("others", {}).get("ingest_rate", {}).get("figures")
    rate = next(
        (v for k, v in (ingest or {}).items() if "per_s" in k or k.endswith("_s") or "rate" in k), None
    )
    found.append(
        (
            "event ingestion ≥ 5,000 events/s",
            None if not isinstance(rate, int | float) else rate >= 5000,
            f"{ingest}" if ingest else "bench/ingest_rate.py gave no figures",
        )
    )
    f = r.get("flash")
    if f:
        ok = f["attempts_per_second"] >= 1000 and not f["oversold"]
        found.append(
            (
                "flash sale ≥ 1,000 purchase attempts/s with zero oversell",
                ok,
                f"{_f(f['attempts_per_second'], 0)} attempts/s ({f.get('workers', 1)} uvicorn workers, "
                f"{f['failures']} failed); {'OVERSOLD' if f['oversold'] else 'no oversell'}: "
                f"sold {f['sold']} of {f['stock']}, "
                f"purchases hold {f['purchased_units']} units, at most {f['max_per_member']} per member, "
                f"{f['orders_in_db']} orders in the database for {f['orders']} answered",
            )
        )
    found.append(_reco(r))
    return found


def write(directory: Path, r: dict[str, Any], meta: dict[str, str]) -> None:
    """RESULTS.md and results.png in `directory`."""
    chart.draw(r, directory / "results.png")
    settings = r.get("settings", {})
    lines = [
        "# Benchmark results",
        "",
        f"- Machine: {machine()}",
        f"- Date: {meta.get('finished') or f'{datetime.now(UTC):%Y-%m-%d %H:%M} UTC'}",
        f"- Commit: {meta['commit']}",
        f"- Command: `{meta['command']}`",
        f"- Whole run: {r['elapsed']:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in r.get("phases", {}).items())
        + ")",
        f"- Databases: {', '.join(f'{k} {v}' for k, v in r.get('data', {}).items())}"
        " (reused while the seed's fingerprint matches; `--fresh` seeds again)",
        "",
        "## Method",
        "",
        "Every variant runs as one uvicorn process (uvloop, httptools, no access log) pinned to CPU 1 with",
        "`taskset`; the load generator is pinned to CPU 0. PostgreSQL and a private Redis (started by the",
        "bench, so its command counts are ours alone) share the machine unpinned. One database of",
        "100,000 products (`bff seed --demo`) serves every variant in the same invocation.",
        "The flash sale and event ingestion run the BFF with two uvicorn workers, unpinned, as production",
        "would.",
        "",
        f"- **Max req/s**: `wrk -t1 -c16` for {_f(settings.get('seconds'), 0)} s (`bench/lua/post.lua`),",
        "  right after the probe's 11 sequential requests that warm the screen up.",
        f"- **p50/p95/p99**: `hey -c 4 -q …` for {_f(settings.get('latency_seconds'), 0)} s, paced to 50 %",
        "  of B1's max for that screen (wrk2 is not packaged in Debian; hey's workers are a paced closed",
        '  loop). "at req/s" is the rate achieved.',
        "- **SQL/req**: G variants in-process through Tortoise's statement log",
        "  (`tests/support/sql_counter.py`),",
        "  mean of 3 requests after a first one; B1 counts its own statements. **Redis/req**: `INFO",
        "  commandstats` delta over 10 sequential requests. **bytes**: the response body.",
        "- Variants: " + "; ".join(f"**{k}** {v}" for k, v in r["variants"].items()) + ".",
        "",
        "![throughput and p99](results.png)",
        "",
        "## Targets",
        "",
    ]
    for name, ok, detail in _targets(r):
        verdict = "PASS" if ok else ("FAIL" if ok is False else "N/A")
        lines.append(f"- **{verdict}** {name}: {detail}")
    lines += ["", "## Screens", ""]
    for s, label in r["screens"].items():
        lines += [f"### {label}", "", *_screen_table(r, s), ""]
        ratios = [("G1/B1", "G1", "B1"), ("G2/B0", "G2", "B0"), ("G1/G0", "G1", "G0")]
        lines.append(
            "Ratios of max req/s: "
            + ", ".join(
                f"{name} = {_f(_ratio(_rps(r, f'{a}/{s}'), _rps(r, f'{b}/{s}')), 2)}" for name, a, b in ratios
            )
            + "."
        )
        cache = r["probe"].get(f"G2/{s}", {}).get("x_cache", [])
        lines += [f"G2's X-Cache over 10 sequential requests: {', '.join(sorted(set(cache))) or '–'}.", ""]
    miss = r["load"].get("G2miss/product")
    if miss:
        lines += [
            "### G2 response-cache misses (a different product each request)",
            "",
            f"{_f(miss['rps'], 0)} req/s, p99 {_f(miss['p99'], 2)} ms under max load; X-Cache counts "
            f"{miss['counters']} (G1 on one product: {_f(_rps(r, 'G1/product'), 0)} req/s).",
            "",
        ]
    lines += [
        "## Equality of the JSON (against G1)",
        "",
        "| screen | " + " | ".join(r["equality"]) + " |",
        "|---|" + "---|" * len(r["equality"]),
    ]
    for s in r["screens"]:
        lines.append(f"| {s} | " + " | ".join(r["equality"][v].get(s, "–") for v in r["equality"]) + " |")
    lines += [
        "",
        "## SQL statements per request (cold caches, warm)",
        "",
        "| screen | " + " | ".join(r.get("sql", {})) + " |",
        "|---|" + "---|" * len(r.get("sql", {})),
    ]
    for s in r["screens"]:
        lines.append(
            f"| {s} | "
            + " | ".join(
                f"{_f(c[s][0])}, {_f(c[s][1])}" if s in c else "–" for c in r.get("sql", {}).values()
            )
            + " |"
        )
    lines += [
        "",
        "G1small is G1 on the 1,000-product database.",
        "",
        "## ERP answering in 2 s",
        "",
        "Product detail and checkout preview: `hey`, paced to half of G1's own max. placeOrder: `wrk -c4`",
        "(`bench/lua/order.lua`, a fresh idempotency key per request, BUY_NOW of one unit by a member of",
        "its own), paced to about half its healthy maximum; orders placed / userErrors answered counted.",
        "The ERP simulator's `/_sim/config` latency knob makes every ERP answer take 2 s. Product detail",
        "and preview: six alternating 1 s rounds per state (healthy, slow, healthy, …), samples pooled.",
        "ERP inventory queries the simulator recorded during these runs: "
        + (", ".join(f"{k} {v}" for k, v in r.get("erp_calls", {}).items()) or "–")
        + ".",
        "",
        "| ERP | request | p50 ms | p95 ms | p99 ms | at req/s | failed | orders / userErrors |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, v in r.get("erp", {}).items():
        state, screen = key.split("/") if "/" in key else ("healthy, max", key.removesuffix("_max"))
        counted = v.get("counters") or {}
        orders = f"{counted.get('orders', 0)} / {counted.get('rejected', 0)}" if counted else "–"
        lines.append(
            f"| {state} | {screen} | {_f(v['p50'], 2)} | {_f(v['p95'], 2)} | {_f(v['p99'], 2)}"
            f" | {_f(v['rps'], 0)} | {v['failures']} | {orders} |"
        )
    lines += ["", "## Flash sale", ""]
    f = r.get("flash")
    if f:
        lines += [
            f"{f['stock']} units, at most 2 per member, 300 pre-signed-in members (tokens issued before the",
            "run) rotating over 32 keep-alive connections (`wrk`, `bench/lua/rotate.lua`), the BFF with",
            f"{f.get('workers', 1)} uvicorn workers; 1 s of CheckoutPreview first warms the workers up.",
            "",
            "| attempts | attempts/s | orders | userErrors | failed | sold | purchases hold | orders in DB |"
            " oversold |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            f"| {f['attempts']} | {_f(f['attempts_per_second'], 0)} | {f['orders']} | {f['rejected']}"
            f" | {f['failures']} | {f['sold']} / {f['stock']} | {f['purchased_units']} | {f['orders_in_db']}"
            f" | {'YES' if f['oversold'] else 'no'} |",
        ]
    lines += ["", "## Other benchmarks", ""]
    for module, found in r.get("others", {}).items():
        text = found.get("skipped") or f"`{found['figures']}` ({found['seconds']} s)"
        lines.append(f"- **{found['label']}** (`bench/{module}.py`): {text}")
    notes = directory / "GAPS.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    (directory / "RESULTS.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Redraw RESULTS.md and results.png from bench/results.json (e.g. after editing GAPS.md)."""
    directory = Path(__file__).resolve().parent
    results = orjson.loads((directory / "results.json").read_bytes())
    write(directory, results, results["meta"])


if __name__ == "__main__":
    main()
