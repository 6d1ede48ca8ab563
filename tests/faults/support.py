"""Processes the fault tests break on purpose: a private Redis, a private PostgreSQL, `bff` commands.

The machine's shared PostgreSQL and Redis are never touched: each outage is staged on an instance
this module started, on its own port, and stops again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port: int, *, up: bool = True, timeout: float = 15.0) -> None:
    """Until the port accepts connections (or, with up=False, refuses them)."""
    deadline = time.monotonic() + timeout
    while accepts(port) != up:
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {port} still {'closed' if up else 'open'} after {timeout}s")
        time.sleep(0.05)


class PrivateRedis:
    """A memory-only redis-server on a fixed port: `kill()` is the outage, `start()` the return."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        """True when redis-server is installed."""
        return shutil.which("redis-server") is not None

    def start(self) -> None:
        """Start (or restart, empty) the server and wait until it accepts connections."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: Redis vanishes mid-conversation, as in a crash."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        wait_port(self.port, up=False)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temp directory, on its own port (never the shared server)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="bff-faults-pg-"))
        self.data = self.root / "data"
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> bool:
        """True when the PostgreSQL server binaries are installed."""
        return (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()

    def _run(self, *command: str) -> None:
        # PostgreSQL refuses to run as root: the cluster then belongs to the `postgres` account.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def init(self) -> None:
        """Create the cluster (fsync off: it is thrown away)."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "start")  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown: open sessions are terminated, as in a restart by the operator."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        """Stop if running and delete the cluster."""
        subprocess.run(
            [*(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []),
             str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def bff_command(*args: str) -> list[str]:
    """`bff <args>` run with this interpreter (no reliance on the console script being on PATH)."""
    return [sys.executable, "-m", "bff.cli", *args]


def run_bff(env: dict[str, str], *args: str, timeout: float = 300) -> None:
    """Run a `bff` command to completion; raise with its output if it fails."""
    done = subprocess.run(
        bff_command(*args), env=env, cwd=REPO, capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bff {' '.join(args)} failed:\n{(done.stdout + done.stderr).decode()[-3000:]}")


class Bff:
    """A `bff serve` (or `bff worker`) process with its output in a log file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            bff_command(*args), env=env, cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        """What the process printed so far."""
        self._out.flush()
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to this process only."""
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Its exit code, waiting at most `timeout` seconds."""
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        """Make sure it is gone (SIGKILL if it is still running) and close the log."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._out.close()


async def wait_http(url: str, bff: Bff, seconds: float = 60.0) -> None:
    """Until `url` answers 200; fails with the log's tail if the process exits first."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while True:
            assert bff.process.poll() is None, f"the process exited:\n{bff.output()[-3000:]}"
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} did not come up:\n{bff.output()[-3000:]}"
            await asyncio.sleep(0.1)


def child_env(**values: str) -> dict[str, str]:
    """This process's environment without REDIS_URL/DATABASE_URL, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(values)
    return env
