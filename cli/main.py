"""The `listing-audit` command line: headless scan, demo, audit, review, export and training.

Each module in cli/commands defines `register(subparsers)`; this file collects them.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

import cli.commands
from cli.common import CliError
from db.engine import DatabaseAccessError


def command_modules() -> list:
    """Every module in cli.commands, sorted by name."""
    names = sorted(m.name for m in pkgutil.iter_modules(cli.commands.__path__))
    return [importlib.import_module(f"cli.commands.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="listing-audit",
        description="Audit and clean labelled marketplace image datasets.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (CliError, DatabaseAccessError) as error:  # both are one line for the user
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `listing-audit ... | head -1`: the reader has gone, which is no error of ours
        # Point stdout at /dev/null so that the interpreter's final flush does not fail again (Python's own advice).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command stopped by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
