"""The other benchmarks (event ingestion, dashboard, recommendations), run when present; each prints JSON."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

# Module, what it measures, its arguments, and the seconds it may take before it is stopped.
OTHERS: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    # Two workers as production would run them, and enough clients to keep both busy.
    (
        "ingest_rate",
        "event ingestion rate",
        ("--workers", "2", "--concurrency", "8", "--seconds", "5"),
        90.0,
    ),
    ("dashboard_bench", "dashboard on 1M events", ("--runs", "3"), 150.0),
    ("reco_eval", "recommendation hit rate", ("--no-write",), 120.0),
)


def _last_json(text: str) -> Any:
    """The last JSON object printed: one line, or pretty-printed over the last lines."""
    lines = text.strip().splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].lstrip().startswith("{"):
            try:
                return orjson.loads("\n".join(lines[start:]))
            except orjson.JSONDecodeError:
                continue
    return None


async def run_others(
    root: Path,
    logs: Path,
    note: Callable[[str], None],
    env: dict[str, str],
    phase: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Each present script's JSON (or why there is none), with its run time."""
    found: dict[str, Any] = {}
    for module, label, args, budget in OTHERS:
        phase(module)
        if not (root / "bench" / f"{module}.py").exists():
            found[module] = {"label": label, "skipped": f"bench/{module}.py is not there yet"}
            continue
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"bench.{module}",
            *args,
            cwd=root,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), budget)
        except TimeoutError:
            process.kill()
            await process.wait()
            found[module] = {"label": label, "skipped": f"stopped after {budget:.0f}s"}
            continue
        text = out.decode(errors="replace")
        (logs / f"{module}.log").write_text(text)
        figures = _last_json(text)
        seconds = time.monotonic() - started
        if process.returncode != 0 or figures is None:
            found[module] = {"label": label, "skipped": f"exit {process.returncode}: {text[-400:]}"}
        else:
            found[module] = {"label": label, "figures": figures, "seconds": round(seconds, 1)}
        note(f"{module}: {str(found[module])[:200]}")
    return found
