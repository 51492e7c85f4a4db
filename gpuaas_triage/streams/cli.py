"""The ``triage`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from gpuaas_triage.errors import TriageError
from gpuaas_triage.settings import Settings

logger = logging.getLogger("gpuaas_triage.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triage",
        description="Classify app-platform failures from service logs, as the "
        "operator runbook would. Settings come from TRIAGE_* variables.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run a worker of the consumer group")

    rp = sub.add_parser("replay", help="run the core over JSON-lines files, no broker")
    rp.add_argument(
        "files", nargs="+", metavar="FILE", help="log files, or - for stdin"
    )
    rp.add_argument(
        "--dead-letter",
        metavar="FILE",
        help="write lines that cannot be triaged here, as JSON lines",
    )

    pr = sub.add_parser("produce", help="send JSON-lines log files to the input topics")
    pr.add_argument(
        "files", nargs="+", metavar="FILE", help="log files, or - for stdin"
    )
    pr.add_argument(
        "--no-key",
        action="store_true",
        help="send unkeyed (the worker repartitions by correlation_id)",
    )

    tl = sub.add_parser("tail", help="print incidents and escalations as they arrive")
    tl.add_argument("--json", action="store_true", help="one JSON object a line")
    tl.add_argument("--from-beginning", action="store_true")
    tl.add_argument(
        "--idle-exit",
        type=float,
        metavar="SECONDS",
        help="exit after this long with nothing new",
    )

    dm = sub.add_parser("demo", help="broker, worker and the public cases played live")
    dm.add_argument("--cases", metavar="FILE", help="scenario cases (JSON lines)")
    dm.add_argument(
        "--no-worker",
        action="store_true",
        help="only play traffic to the configured topics and tail them",
    )
    dm.add_argument(
        "--idle-exit",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="stop this long after the last incident (default 20)",
    )
    dm.add_argument(
        "--max-gap",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="shorten longer gaps between a case's lines (default 5)",
    )

    sc = sub.add_parser("schemas", help="write the JSON Schema files of the events")
    sc.add_argument("--out", metavar="DIR", help="default: the package's schemas/json")

    bn = sub.add_parser("bench", help="throughput, latency, memory and replay speed")
    bn.add_argument("--quick", action="store_true", help="a small load, under a minute")
    bn.add_argument("--json", action="store_true", help="print one JSON object")
    bn.add_argument(
        "--store",
        choices=("memory", "rocksdb"),
        default="memory",
        help="the worker's table store (default memory)",
    )
    bn.add_argument(
        "--lines",
        type=int,
        metavar="N",
        help="lines pre-loaded for the throughput run (default 4000 quick, "
        "100000 full)",
    )
    bn.add_argument(
        "--profile", metavar="DIR", help="cProfile the worker and the replay into DIR"
    )
    bn.add_argument(
        "--escalation-delay",
        action="store_true",
        help="only time escalations: crossing tenant's line to the escalation",
    )

    br = sub.add_parser("broker", help="the local single-node Kafka (KRaft)")
    br.add_argument("action", choices=("start", "stop", "status"))
    return parser


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from gpuaas_triage.streams import replay, tail

    if args.command == "replay":
        return replay.run(args.files, settings, args.dead_letter)
    if args.command == "worker":
        from gpuaas_triage.streams import worker

        worker.run(settings, "debug" if args.verbose else "info")
        return 0
    if args.command == "produce":
        from gpuaas_triage.streams import produce
        from gpuaas_triage.streams.worker import prepare

        settings = prepare(settings)
        lines = [
            event
            for raw, _, _ in replay.read_lines(args.files)
            for event in produce.case_events(raw)
        ]
        asyncio.run(produce.produce(lines, settings, keyed=not args.no_key))
        return 0
    if args.command == "tail":
        from gpuaas_triage.streams.broker import ensure_broker

        settings = settings.model_copy(
            update={"bootstrap_servers": ensure_broker(settings)}
        )
        return tail.run(
            settings,
            as_json=args.json,
            from_beginning=args.from_beginning,
            idle_exit=args.idle_exit,
        )
    if args.command == "demo":
        from gpuaas_triage.streams import demo

        return demo.run(
            settings,
            cases=args.cases,
            with_worker=not args.no_worker,
            idle_exit=args.idle_exit,
            max_gap=args.max_gap,
        )
    if args.command == "schemas":
        from pathlib import Path

        from gpuaas_triage.schemas import jsonschema

        for path in jsonschema.write(
            Path(args.out) if args.out else jsonschema.SCHEMA_DIR
        ):
            print(path)  # noqa: T201  # the CLI's output
        return 0
    if args.command == "bench" and args.escalation_delay:
        import orjson

        from gpuaas_triage.bench import escalation_delay
        from gpuaas_triage.streams.worker import prepare

        result = escalation_delay.measure(prepare(settings))
        print(orjson.dumps(result).decode())  # noqa: T201  # the CLI's output
        return 0
    if args.command == "bench":
        from gpuaas_triage.bench import run as bench

        return bench.run(
            settings,
            quick=args.quick,
            as_json=args.json,
            store=args.store,
            lines=args.lines,
            profile_dir=args.profile,
        )
    if args.command == "broker":
        from gpuaas_triage.streams.broker import LocalBroker

        broker = LocalBroker(settings)
        if args.action == "start":
            print(broker.start(), flush=True)  # noqa: T201  # the CLI's output
        elif args.action == "stop":
            print("stopped" if broker.stop() else "not running")  # noqa: T201
        else:
            status = broker.status()
            print(  # noqa: T201  # the CLI's output
                f"{'running' if status.running else 'stopped'} pid={status.pid} "
                f"bootstrap={status.bootstrap} log={status.log_path}"
            )
            return 0 if status.running else 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return _dispatch(args, Settings())
    except TriageError as exc:
        logger.error("%s", exc)  # noqa: TRY400  # the message is the whole story
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
