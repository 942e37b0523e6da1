"""The --executor option of `scan` and `audit`: where the image work runs (core.executors)."""
from __future__ import annotations

import argparse

from cli.common import CliError
from core.executors import EXECUTORS, INSTALL_HINT, RAY_ADDRESS_ENV, ExecutorError, check_ray, resolve_executor


def add_executor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor", choices=EXECUTORS, default=None,
        help=f"where images are inspected and embedded: this machine's processes (local) or Ray Data on a "
             f"Ray cluster (ray; {INSTALL_HINT}; the cluster is ${RAY_ADDRESS_ENV}, else a local Ray instance). "
             f"Default: ray when ${RAY_ADDRESS_ENV} is set, else local",
    )


def chosen_executor(args: argparse.Namespace) -> str:
    """--executor or its default; CliError when it is ray and Ray is not installed or the cluster does not answer."""
    executor = resolve_executor(args.executor)
    if executor == "ray":
        try:
            check_ray()
        except ExecutorError as error:
            raise CliError(str(error)) from None
    return executor
