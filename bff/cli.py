"""The `bff` command: serve, migrate, seed, export-schema, simulators, issue-token."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import uvicorn

from bff.auth import Principal, Role, issue_token
from bff.db import close_db, init_db, migrate
from bff.settings import load_settings


def _serve(args: argparse.Namespace) -> None:
    if args.worker:
        # create_app reads the environment in each uvicorn worker process.
        os.environ["BFF_INPROCESS_WORKER"] = "1"
    settings = load_settings()
    settings.check()
    options = {"host": args.host, "port": args.port, "factory": True, "log_level": "info"}
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
        principal = Principal(role=Role.MEMBER, member_id=args.member_id)
    print(issue_token(principal, settings.jwt_secret, args.ttl).token)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="bff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the BFF over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--simulators", action="store_true", help="also run the ERP, CRM and WeChat simulators (development)"
    )
    serve.add_argument("--worker", action="store_true", help="also run the outbox worker in-process")
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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `bff` console script."""
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
