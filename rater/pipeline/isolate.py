"""Keeping one bad record from stopping a partition (docs/DESIGN.md section 4).

A batch-level call (account look-up, rating, debit) that fails with an error a record can cause
is retried once, then the batch is halved until the records that fail on their own are found;
every other record goes on. An infrastructure error (a service down, restarting or out of
memory) is never blamed on a record: it propagates, and the worker retries the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import redis.exceptions as redis_errors
from aiokafka.errors import KafkaError
from clickhouse_driver import errors as ch_errors

from rater.errors import RaterError
from rater.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")
Index = npt.NDArray[np.int64]

#: Redis error replies that describe the server's state, not the request
_SERVER_STATES = ("OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
                  "NOREPLICAS", "MOVED", "ASK", "NOSCRIPT", "NOAUTH", "NOPERM")  # fmt: skip


def is_infrastructure(error: BaseException) -> bool:
    """True when `error` says a service (or this process) failed, whatever the records were."""
    if isinstance(error, RaterError):
        return error.retriable
    if isinstance(error, KafkaError):
        return True
    if isinstance(error, redis_errors.ResponseError):
        # a script's own error ("ERR user_script...") is about its input; these are not
        return str(error).split(" ", 1)[0].upper() in _SERVER_STATES
    return isinstance(
        error,
        redis_errors.ConnectionError
        | redis_errors.TimeoutError
        | redis_errors.RedisClusterException
        | ch_errors.NetworkError
        | ch_errors.SocketTimeoutError
        | ch_errors.ServerException
        | OSError
        | EOFError
        | TimeoutError
        | MemoryError,
    )


def bisect(
    size: int, call: Callable[[Index], T], *, what: str
) -> tuple[list[tuple[Index, T]], dict[int, Exception]]:
    """`call` on indexes 0..size-1, halving the set around records that make it fail.

    Returns the results of the calls that succeeded, each with its indexes (contiguous and in
    ascending order, so the pieces of an offset-ordered batch stay in order), and the error of
    every index that failed alone. Infrastructure errors propagate.
    """
    done: list[tuple[Index, T]] = []
    failed: dict[int, Exception] = {}

    def run(index: Index, attempts: int) -> None:
        error: Exception | None = None
        for _ in range(attempts):
            try:
                done.append((index, call(index)))
                return
            except Exception as caught:
                if is_infrastructure(caught):
                    raise
                error = caught
        assert error is not None
        if len(index) == 1:
            failed[int(index[0])] = error
            return
        half = len(index) // 2
        run(index[:half], 1)
        run(index[half:], 1)

    if size:
        run(np.arange(size, dtype=np.int64), 2)
    if failed:
        first = next(iter(failed.values()))
        log.warning(
            f"{what}: records failed on their own",
            records=len(failed), of=size, error=repr(first)[:200],
        )  # fmt: skip
    return done, failed
