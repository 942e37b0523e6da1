"""Where the image work runs: "local" (this machine's processes, the default) or "ray" (Ray Data, on a cluster).

`resolve_executor` chooses (LISTING_AUDIT_RAY_ADDRESS makes "ray" the default), `check_ray` says in one
line why Ray cannot be used, and `map_batches_on_ray` runs `RayStage`s (batch functions in tasks, callable
classes in actors) over rows as a Ray Data pipeline, results in input order. Ray is imported only here
and only when asked for: the local path needs no Ray.
"""
from __future__ import annotations

import logging
import math
import os
import re
import socket
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

import numpy as np

from core.progress import ProgressCallback

#: progress(fraction in [0, 1], message)

EXECUTORS = ("local", "ray")
DEFAULT_EXECUTOR = "local"
#: The Ray cluster to use ("head:6379", "auto"); setting it makes "ray" the default.
RAY_ADDRESS_ENV = "LISTING_AUDIT_RAY_ADDRESS"
#: Seconds to wait for the cluster's port to answer before giving up (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = "pip install 'listing-audit[ray]'"
#: The line of a remote traceback that names the exception: "core.models.embeddings.MissingWeightsError: message".
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception)): (.+)$")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class ExecutorError(RuntimeError):
    """Ray was asked for but cannot be used (not installed, cluster unreachable); the message says why in one line."""


def ray_address() -> Optional[str]:
    """The cluster address in $LISTING_AUDIT_RAY_ADDRESS, None when unset or blank."""
    return os.environ.get(RAY_ADDRESS_ENV, "").strip() or None


def resolve_executor(name: Optional[str] = None) -> str:
    """`name` checked, or when None the default: "ray" if $LISTING_AUDIT_RAY_ADDRESS is set, else "local".

    Raises ValueError listing the executors for an unknown name.
    """
    if name is None:
        return "ray" if ray_address() else DEFAULT_EXECUTOR
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; executors are: {', '.join(EXECUTORS)}")
    return name


def check_ray() -> None:
    """Raise ExecutorError unless Ray is installed and the cluster in $LISTING_AUDIT_RAY_ADDRESS (if any)
    answers on its port. Starts nothing: cheap enough to call before any work."""
    _import_ray()
    address = ray_address()
    if address and address.startswith("ray://"):
        raise ExecutorError(
            f"Ray Data pipelines do not run through Ray Client ({address}); give the cluster's GCS address "
            f"(head:6379) from a machine of the cluster, or run listing-audit there with `ray job submit`")
    if address:
        _check_reachable(address)


def _import_ray() -> ModuleType:
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs ray[data]; plain `ray` lacks it)
    except ImportError as error:
        raise ExecutorError(
            f"the ray executor needs Ray Data, which is not installed ({error}): {INSTALL_HINT}") from None
    return ray


def _host_and_port(address: str) -> Optional[tuple[str, int]]:
    """("head", 6379) from "head:6379"; None for names like "auto"."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    target = _host_and_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ExecutorError(f"cannot reach the Ray cluster at {address} (${RAY_ADDRESS_ENV}): "
                            f"{error.strerror or error}") from None


def connect_ray() -> ModuleType:
    """The `ray` module, connected: to the cluster in $LISTING_AUDIT_RAY_ADDRESS, to the Ray already
    initialised in this process, or else to a new local Ray instance. Raises ExecutorError."""
    check_ray()
    import ray

    if not ray.is_initialized():
        address = ray_address()
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise ExecutorError(f"cannot connect to {where}: {str(error).splitlines()[0]}{_auth_hint(address)}") \
                from None
    _quiet_ray_data(ray)
    return ray


def _auth_hint(address: Optional[str]) -> str:
    """What to try when a cluster refuses us and this process has not enabled Ray's token authentication,
    which clusters started by `ray start` use since Ray 2.59."""
    if not address or os.environ.get("RAY_AUTH_MODE"):
        return ""
    return " (if the cluster uses token authentication, set RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN: docs/ray.md)"


def _quiet_ray_data(ray: ModuleType) -> None:
    """No progress bars, execution plans, tuning hints or stack traces on the terminal: the CLI's own
    progress bar and --format json output stay readable. A failure still raises (map_batches_on_ray);
    Ray Data's log files on the cluster keep the rest."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)


def cluster_gpus() -> int:
    """Whole GPUs in the connected cluster."""
    return int(connect_ray().cluster_resources().get("GPU", 0))


def cluster_cpus() -> int:
    """CPUs in the connected cluster (at least 1)."""
    return max(1, int(connect_ray().cluster_resources().get("CPU", 1)))


@dataclass(frozen=True)
class RayStage:
    """One map_batches step of a pipeline.

    fn: a function of a numpy batch (dict of column -> array) returning one, run in Ray tasks (at most
    `tasks` at a time; None: as many as the cluster runs), called with fn(batch, **kwargs); or a class
    whose instances are called on batches, run in a pool of `actors` actors (each made once with
    constructor_kwargs, holding num_gpus GPUs). Every output batch carries the input's `index` column.
    """

    fn: Callable
    kwargs: dict[str, Any] = field(default_factory=dict)
    tasks: Optional[int] = None
    actors: Optional[int] = None
    constructor_kwargs: dict[str, Any] = field(default_factory=dict)
    num_gpus: float = 0


def _add_stage(ray: ModuleType, dataset, stage: RayStage, *, blocks: int):
    """dataset.map_batches(stage), one block per batch; no more actors than blocks (an actor without a
    block would idle)."""
    options: dict[str, Any] = {"num_gpus": stage.num_gpus} if stage.num_gpus else {}
    if stage.actors:
        compute = ray.data.ActorPoolStrategy(size=min(stage.actors, blocks))
        options["fn_constructor_kwargs"] = stage.constructor_kwargs
    else:
        compute = ray.data.TaskPoolStrategy(size=stage.tasks)
    return dataset.map_batches(stage.fn, fn_kwargs=stage.kwargs, compute=compute, batch_size=None,
                               batch_format="numpy", **options)


def map_batches_on_ray(
    rows: Sequence[dict[str, Any]],
    stages: Sequence[RayStage],
    *,
    batch_size: int,
    progress: Optional[ProgressCallback] = None,
    noun: str = "images",
) -> dict[str, np.ndarray]:
    """Run `rows` through `stages` as one Ray Data pipeline; the last stage's output columns, in the order
    of `rows`.

    rows: at least one; one dict of plain values (str, int, float, None) per item, the same keys in each.
    The rows are split evenly into ceil(len(rows) / batch_size) blocks, and each batch a stage sees is
    one block (at most batch_size rows). Progress is reported as batches come back; the columns are put
    back in input order by the `index` column (each row's position).
    Raises ExecutorError naming the exception a stage raised on the cluster (or why Ray cannot be used).
    """
    ray = connect_ray()
    total = len(rows)
    blocks = max(1, math.ceil(total / batch_size))
    dataset = ray.data.from_items([{"index": index, **row} for index, row in enumerate(rows)],
                                  override_num_blocks=blocks)
    for stage in stages:
        dataset = _add_stage(ray, dataset, stage, blocks=blocks)
    batches, done = [], 0
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            batches.append(batch)
            done += len(batch["index"])
            if progress:
                progress(done / total, f"{done}/{total} {noun}")
    except ray.exceptions.RayError as error:
        raise ExecutorError(f"the Ray pipeline failed: {remote_error_line(error)}") from None
    columns = {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}
    order = np.argsort(columns["index"], kind="stable")
    return {name: values[order] for name, values in columns.items()}


def remote_error_line(error: BaseException) -> str:
    """The exception a Ray task or actor raised, as "Name: message", from the traceback Ray's error carries
    (the first one it names: the cause); Ray's own first line when it names none."""
    lines = [_ANSI_ESCAPE.sub("", line).strip() for line in str(error).splitlines()]
    for line in lines:
        match = _EXCEPTION_LINE.match(line)
        if match:
            return f"{match.group(1)}: {match.group(2)}"
    return next((line for line in lines if line), type(error).__name__)


def object_column(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of `values` (np.array would make a 2-D array of a list of tuples)."""
    column = np.empty(len(values), dtype=object)
    column[:] = list(values)
    return column
