"""The load generators: wrk for maximum throughput, hey for latency at a fixed request rate."""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import LOAD_CPU, pinned

LUA = Path(__file__).parent / "lua"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def missing_tools() -> list[str]:
    """Install hints for the load generators that are not on PATH."""
    hints = {
        "wrk": "apt-get install -y wrk",
        "hey": "apt-get install -y hey",
        "taskset": "apt-get install -y util-linux",
    }
    return [f"{tool} (install: {hint})" for tool, hint in hints.items() if shutil.which(tool) is None]


@dataclass
class LoadResult:
    """What one run measured; latencies in milliseconds."""

    rps: float
    requests: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    failures: int = 0
    counters: dict[str, int] = field(default_factory=dict)


async def _run(command: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *pinned(command, LOAD_CPU), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {text[-2000:]}")
    return text


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise ValueError(f"not a wrk duration: {value}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(text: str) -> LoadResult:
    """Requests/s, the 50/99th percentiles and failures from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    percentiles = {int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", text, re.M)}
    failures = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if errors:
        failures += sum(int(n) for n in errors.groups())
    counters = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", " ".join(re.findall(r"rotate: .*", text)))}
    return LoadResult(rps, requests, percentiles.get(50), None, percentiles.get(99), failures, counters)


async def wrk(url: str, script: str, args: list[str], seconds: float, connections: int) -> LoadResult:
    """wrk with one thread and `connections` keep-alive connections for `seconds`."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(LUA / script),
        url,
        "--",
        *args,
    ]
    return parse_wrk(await _run(command))


def _percentile(sorted_ms: list[float], p: float) -> float | None:
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, round(p / 100 * len(sorted_ms) + 0.5) - 1)]


def hey_samples(text: str) -> tuple[list[float], int]:
    """Every request's time in ms and the count of non-200 answers, from `hey -o csv`."""
    times, failures = [], 0
    for line in text.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) < 7 or not fields[0].replace(".", "", 1).isdigit():
            continue
        times.append(float(fields[0]) * 1000)
        failures += fields[6] != "200"
    return times, failures


def summarise(times: list[float], failures: int, seconds: float) -> LoadResult:
    """Rate and percentiles of request times (several runs' samples may be pooled)."""
    times = sorted(times)
    return LoadResult(
        rps=len(times) / seconds,
        requests=len(times),
        p50=_percentile(times, 50),
        p95=_percentile(times, 95),
        p99=_percentile(times, 99),
        failures=failures,
    )


def parse_hey_csv(text: str, seconds: float) -> LoadResult:
    """Percentiles computed from every request's time (`hey -o csv`), so few samples still give a p99."""
    return summarise(*hey_samples(text), seconds)


async def hey_raw(
    url: str, body: Path, headers: dict[str, str], rate: float, seconds: float, workers: int
) -> str:
    """hey's CSV output (see `hey`)."""
    return await _run([*_hey_command(body, headers, rate, seconds, workers), url])


async def hey(
    url: str, body: Path, headers: dict[str, str], rate: float, seconds: float, workers: int
) -> LoadResult:
    """hey with `workers` workers sending `rate` requests/s in all for `seconds` (a paced, closed loop)."""
    text = await hey_raw(url, body, headers, rate, seconds, workers)
    return parse_hey_csv(text, max(1, round(seconds)))


def _hey_command(body: Path, headers: dict[str, str], rate: float, seconds: float, workers: int) -> list[str]:
    command = [
        "hey",
        "-z",
        f"{max(1, round(seconds))}s",
        "-c",
        str(workers),
        "-q",
        f"{max(rate / workers, 0.1):.2f}",
        "-m",
        "POST",
        "-D",
        str(body),
        "-disable-compression",
        "-o",
        "csv",
    ]
    for name, value in headers.items():
        command += ["-T", value] if name == "Content-Type" else ["-H", f"{name}: {value}"]
    return command
