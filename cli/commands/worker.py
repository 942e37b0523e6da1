"""`listing-audit worker JOB_ID`: run one queued job in this process (the app spawns these)."""
from __future__ import annotations

import argparse

from cli.common import CliError, add_db_option, open_db
from jobs.runner import run_job


def register(subparsers) -> None:
    parser = subparsers.add_parser("worker", help="run a queued background job (used by the app)")
    parser.add_argument("job_id", type=int)
    add_db_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        job = run_job(open_db(args), args.job_id)
    except ValueError as error:
        raise CliError(str(error)) from error
    return 0 if job.status == "succeeded" else 1
