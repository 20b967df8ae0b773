"""Redis: a Lua script called with keys and arguments runs atomically."""

from __future__ import annotations

import threading

import pytest

from rater.redis.connection import RedisLike

pytestmark = pytest.mark.integration

#: read-modify-write in two steps: without the script's atomicity, concurrent callers would
#: overwrite each other's additions and the total would come out short
ADD_AND_COUNT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[1], current + tonumber(ARGV[1]))
local calls = redis.call('INCRBY', KEYS[2], 1)
return {current + tonumber(ARGV[1]), calls}
"""


def test_lua_script_with_keys_and_args(redis: RedisLike) -> None:
    script = redis.register_script(ADD_AND_COUNT)
    assert script(keys=["{acct:1}:balance", "{acct:1}:calls"], args=[1500]) == [1500, 1]
    assert script(keys=["{acct:1}:balance", "{acct:1}:calls"], args=[-200]) == [1300, 2]
    assert redis.get("{acct:1}:balance") == b"1300"


def test_lua_script_is_atomic_under_concurrent_callers(redis: RedisLike) -> None:
    script = redis.register_script(ADD_AND_COUNT)
    threads, calls_each = 4, 50
    errors: list[BaseException] = []

    def worker(amount: int) -> None:
        try:
            for _ in range(calls_each):
                script(keys=["{acct:2}:balance", "{acct:2}:calls"], args=[amount])
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(n + 1,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    assert not errors
    assert int(redis.get("{acct:2}:balance") or 0) == calls_each * sum(range(1, threads + 1))
    assert int(redis.get("{acct:2}:calls") or 0) == threads * calls_each


def test_incrby_in_a_script_rejects_a_non_integer_argument(redis: RedisLike) -> None:
    import redis as redis_lib

    script = redis.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    with pytest.raises(redis_lib.ResponseError, match="not an integer"):
        script(keys=["{acct:3}:balance"], args=["1.5"])
    assert redis.get("{acct:3}:balance") is None
