"""`llm-kit`: start the workshop, run the offline model server, grade notebooks."""

from __future__ import annotations

import argparse
import sys

from helpers.friendly_errors import KitError

from .offline.config import DEFAULT_PARALLEL, DEFAULT_PORT


def _server(args: argparse.Namespace) -> int:
    from .offline import server_status, start_server, stop_server

    if args.action == "check":
        from .offline.cpu import ENGINE_PACKAGE, ENGINE_VERSION, require_supported_cpu
        from .offline.model import verified_model

        require_supported_cpu()
        print(f"engine: {ENGINE_PACKAGE} {ENGINE_VERSION} (llama.cpp's server, prebuilt)")
        print(f"model:  {verified_model()} (sha256 verified)")
    elif args.action == "start" and args.foreground:
        from .offline.server import exec_foreground

        exec_foreground(port=args.port, host=args.host, parallel=args.parallel)
    elif args.action == "start":
        start_server(port=args.port, host=args.host, parallel=args.parallel)
    elif args.action == "stop":
        stop_server(port=args.port)
    elif args.action == "status":
        status = server_status(port=args.port)
        print(status.describe())
        return 0 if status.running else 3
    return 0


def _workshop(args: argparse.Namespace) -> int:
    from .workshop import run_workshop

    return run_workshop(lab_port=args.port, lab_ip=args.ip, server_port=args.server_port,
                        dry_run=args.dry_run, instructor=args.command == "instructor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-kit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    server = commands.add_parser("server", help="the offline llama.cpp model server "
                                 "(check: CPU and model file)")
    server.add_argument("action", choices=["start", "stop", "status", "check"])
    server.add_argument("--port", type=int, default=_env_int("KIT_SERVER_PORT", DEFAULT_PORT))
    server.add_argument("--host", default="127.0.0.1",
                        help="address to bind (127.0.0.1; 0.0.0.0 only inside a container)")
    server.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL,
                        help=f"parallel slots (default {DEFAULT_PARALLEL})")
    server.add_argument("--foreground", action="store_true",
                        help="run in the foreground (containers); Ctrl-C stops it")
    server.set_defaults(run=_server)

    for name, purpose in (("workshop", "start JupyterLab connected to an LLM (learners: notebooks/)"),
                          ("instructor", "the same, at the repository root with nbgrader's "
                                         "instructor tools")):
        workshop = commands.add_parser(name, help=purpose)
        workshop.add_argument("--port", type=int, default=_env_int("KIT_LAB_PORT", 8888))
        workshop.add_argument("--ip", default=None, help="JupyterLab address (default 127.0.0.1)")
        workshop.add_argument("--server-port", type=int,
                              default=_env_int("KIT_SERVER_PORT", DEFAULT_PORT))
        workshop.add_argument("--dry-run", action="store_true",
                              help="print what would be started and exit")
        workshop.set_defaults(run=_workshop)

    from .classroom.cli import add_classroom_command
    from .grading.cli import add_grading_commands
    from .preflight import add_preflight_command

    add_grading_commands(commands)
    add_classroom_command(commands, _env_int("KIT_SERVER_PORT", DEFAULT_PORT))
    add_preflight_command(commands, _env_int("KIT_SERVER_PORT", DEFAULT_PORT))
    return parser


def _env_int(name: str, default: int) -> int:
    import os

    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else default


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except KitError as exc:
        print(f"⚠ {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
