"""The `bff` command: serve, migrate, seed, export-schema, simulators, issue-token, rotate-pii-key."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from bff import log_privacy
from bff.auth import Principal, Role, issue_token
from bff.db import close_db, init_db, migrate
from bff.settings import load_settings


def _fastest(module: str, fast: str) -> str:
    # uvloop and httptools are C speedups (Linux/macOS wheels); without them uvicorn's pure-Python
    # asyncio loop and h11 parser serve the same requests more slowly.
    return fast if importlib.util.find_spec(module) is not None else "auto"


def _exit_zero_after_drain() -> None:
    # uvicorn re-raises the SIGTERM/SIGINT it handled once its graceful shutdown is done, so the
    # default handler would kill the process with that signal after a clean drain; a drained
    # shutdown is a success (exit 0), as supervisors expect. uvicorn installs its own handlers
    # while it serves, so the signals still start the graceful shutdown.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)


def _serve(args: argparse.Namespace) -> None:
    _exit_zero_after_drain()
    if args.worker:
        # create_app reads the environment in each uvicorn worker process.
        os.environ["BFF_INPROCESS_WORKER"] = "1"
    settings = load_settings()
    settings.check()
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "factory": True,
        "log_level": "info",
        "loop": _fastest("uvloop", "uvloop"),
        "http": _fastest("httptools", "httptools"),
        "access_log": args.access_log,
    }
    if not args.simulators:
        uvicorn.run("bff.app:create_app", workers=args.workers, **options)
        return
    if args.workers != 1:
        sys.exit("--simulators runs in one process: use --workers 1")
    from integrations.simulators.runner import serve_simulators

    async def serve_with_simulators() -> None:
        server = uvicorn.Server(uvicorn.Config("bff.app:create_app", **options))
        simulators = asyncio.create_task(serve_simulators(host="127.0.0.1"))
        try:
            await server.serve()
        finally:
            simulators.cancel()

    asyncio.run(serve_with_simulators())


def _migrate(_: argparse.Namespace) -> None:
    asyncio.run(migrate(load_settings().database_url))
    print("migrations applied")


def _seed(args: argparse.Namespace) -> None:
    if not args.demo:
        sys.exit("nothing to seed: pass --demo")
    from bff.seed import seed_demo

    async def run() -> None:
        await init_db(load_settings().database_url)
        try:
            summary = await seed_demo(products=args.products)
        finally:
            await close_db()
        print(summary)

    asyncio.run(run())


def _export_schema(_: argparse.Namespace) -> None:
    from schema.build import build_schema

    print(build_schema().as_str())


def _worker(args: argparse.Namespace) -> None:
    from bff.worker import main as worker_main

    log_privacy.install()
    sys.exit(asyncio.run(worker_main(args.rest)))


def _simulators(args: argparse.Namespace) -> None:
    from integrations.simulators.runner import main as simulators_main

    simulators_main(args.rest)


def _issue_token(args: argparse.Namespace) -> None:
    settings = load_settings()
    if args.role == "operator":
        principal = Principal(role=Role.OPERATOR, name=args.name)
    else:
        if not args.member_id:
            sys.exit("--role member needs --member-id")
        version = asyncio.run(_member_token_version(settings.database_url, args.member_id))
        if version is None:
            sys.exit(f"no member {args.member_id} (or the account was deleted)")
        principal = Principal(role=Role.MEMBER, member_id=args.member_id, token_version=version)
    # Signed with the first key of JWT_SECRETS (or JWT_SECRET as key `default`), like the server's tokens.
    print(issue_token(principal, settings.signing_keys, args.ttl).token)


def _rotate_pii_key(_: argparse.Namespace) -> None:
    from bff.services.pii_rotation import reencrypt_all

    async def run() -> dict[str, int]:
        await init_db(load_settings().database_url)
        try:
            return await reencrypt_all()
        finally:
            await close_db()

    for table, count in asyncio.run(run()).items():
        print(f"{table}: {count} rows re-encrypted")


async def _member_token_version(database_url: str, member_id: int) -> int | None:
    # A member token must carry the current session version, or the server refuses it as signed out.
    from bff.sessions import token_version_of

    await init_db(database_url)
    try:
        return await token_version_of(member_id)
    finally:
        await close_db()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="bff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the BFF over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="processes; share a cache through REDIS_URL")
    serve.add_argument(
        "--simulators", action="store_true", help="also run the ERP, CRM and WeChat simulators (development)"
    )
    serve.add_argument("--worker", action="store_true", help="also run the outbox worker in-process")
    serve.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no log line per request (measurably faster under load)",
    )
    serve.set_defaults(func=_serve)

    sub.add_parser("migrate", help="apply the database migrations").set_defaults(func=_migrate)

    seed = sub.add_parser("seed", help="seed demo data into an empty database")
    seed.add_argument("--demo", action="store_true")
    seed.add_argument("--products", type=int, default=600)
    seed.set_defaults(func=_seed)

    sub.add_parser("export-schema", help="print the GraphQL SDL").set_defaults(func=_export_schema)

    worker = sub.add_parser("worker", help="run the outbox worker (see `bff worker --help`)", add_help=False)
    worker.add_argument("rest", nargs=argparse.REMAINDER)
    worker.set_defaults(func=_worker)

    sims = sub.add_parser("simulators", help="run the fake ERP, CRM and WeChat servers", add_help=False)
    sims.add_argument("rest", nargs=argparse.REMAINDER)
    sims.set_defaults(func=_simulators)

    token = sub.add_parser("issue-token", help="print a bearer token")
    token.add_argument("--role", choices=["operator", "member"], default="operator")
    token.add_argument("--name", default="operator")
    token.add_argument("--member-id", type=int)
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    token.set_defaults(func=_issue_token)

    sub.add_parser(
        "rotate-pii-key", help="re-encrypt personal data under the first key of PII_KEYS"
    ).set_defaults(func=_rotate_pii_key)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `bff` console script."""
    parser = build_parser()
    # argparse's REMAINDER does not collect a leading "--option" (`bff worker --topic x`): pass the
    # options it leaves unknown on to the subcommands that parse their own (worker, simulators).
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not hasattr(args, "rest"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.rest = [*unknown, *args.rest]
    args.func(args)


if __name__ == "__main__":
    main()
