"""`llm-kit classroom`: start the room; release, collect, grade and feedback for the instructor."""

from __future__ import annotations

import os


def _start(args) -> int:
    from .run import run_classroom

    return run_classroom(port=args.port, ip=args.ip, server_port=args.server_port, slots=args.slots)


def _instructor(args) -> int:
    from . import instructor

    if args.action == "grade":
        return instructor.grade(args.assignment, args.jobs, args.server_port)
    {"release": instructor.release, "collect": instructor.collect,
     "feedback": instructor.feedback}[args.action](args.assignment)
    return 0


def add_classroom_command(commands, server_port: int) -> None:
    from .run import DEFAULT_SLOTS

    room = commands.add_parser("classroom", help="JupyterHub for a class on this host (root): "
                               "start, or release|collect|grade|feedback an assignment")
    actions = room.add_subparsers(dest="action")
    room.add_argument("--port", type=int, default=None, help="the hub's port (KIT_CLASSROOM_PORT, 8100)")
    room.add_argument("--ip", default=None,
                      help="address to bind (KIT_CLASSROOM_IP; 127.0.0.1; 0.0.0.0 publishes it)")
    room.add_argument("--server-port", type=int, default=server_port,
                      help="the offline model server's port when no NIM is configured")
    slots = int(os.environ.get("KIT_CLASSROOM_SLOTS") or DEFAULT_SLOTS)
    room.add_argument("--slots", type=int, default=slots,
                      help=f"parallel slots of an offline server started here (default {DEFAULT_SLOTS})")
    room.set_defaults(run=_start)
    grading_port = int(os.environ.get("KIT_GRADING_PORT", "8010"))
    for action, purpose in (("release", "put an assignment in the exchange"),
                            ("collect", "collect the learners' submissions"),
                            ("grade", "autograde the collected submissions"),
                            ("feedback", "generate and release feedback")):
        sub = actions.add_parser(action, help=purpose)
        sub.add_argument("assignment", help="e.g. 02_streaming_and_batching")
        if action == "grade":
            sub.add_argument("--jobs", type=int, default=int(os.environ.get("KIT_GRADING_JOBS", "4")))
            sub.add_argument("--server-port", type=int, default=grading_port)
        sub.set_defaults(run=_instructor)
