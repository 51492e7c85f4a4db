"""The ``triage`` command."""

from __future__ import annotations

import argparse
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

    rp = sub.add_parser("replay", help="run the core over JSON-lines files, no broker")
    rp.add_argument("files", nargs="+", metavar="FILE", help="log files, or - for stdin")
    rp.add_argument("--dead-letter", metavar="FILE",
                    help="write lines that cannot be triaged here, as JSON lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings()
        if args.command == "replay":
            from gpuaas_triage.streams import replay

            return replay.run(args.files, settings, args.dead_letter)
    except TriageError as exc:
        logger.error("%s", exc)  # noqa: TRY400  # the message is the whole story
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
