"""What a failed Redis call becomes: StoreUnavailable (not reachable now: the service answers
from rules alone) or StoreRefused (Redis said no to journeyman: wrong credentials or ACL). Every
other error is a bug and is raised as it is.

Messages reach clients, so they never name the URL (it may hold a password) nor any other address
of Redis; redis-py's own error stays chained as the cause, for tracebacks.
"""

from __future__ import annotations

import re
from types import TracebackType

import redis.exceptions as redis_errors

from engine.errors import JourneymanError
from server.store.cluster import CLUSTER_NETWORK_ERRORS, error_chain

# The errors that mean "Redis is not reachable right now", not "the command was wrong".
# BusyLoadingError (a replica or restarted server replaying its AOF) is a ConnectionError;
# OSError covers socket failures raised before redis-py wraps them, and the builtin TimeoutError;
# the cluster ones (CLUSTERDOWN, MASTERDOWN, TRYAGAIN, uncovered slots) are in
# server/store/cluster.py.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    OSError,
    *CLUSTER_NETWORK_ERRORS,
)
# Redis saying no to journeyman itself rather than being unreachable. AuthenticationError and
# AuthorizationError are ConnectionErrors, so they are caught before NETWORK_ERRORS.
REFUSED_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.AuthenticationError,
    redis_errors.AuthorizationError,
    redis_errors.NoPermissionError,
)
# What an ACL user of journeyman must be allowed (tests/faults/test_redis_credentials.py).
COMMANDS_NEEDED = (
    "PING", "HMGET", "HGET", "HSET", "HDEL", "HINCRBY", "HGETALL", "EXPIRE", "DEL", "EVALSHA",
    "SCRIPT LOAD", "ZADD", "ZREM", "ZRANGEBYSCORE", "ZSCORE", "ZCARD", "XADD", "XREAD",
    "XREVRANGE",
)  # fmt: skip
# How Redis 7 words an ACL refusal met inside a script (a ResponseError, not NoPermissionError).
_SCRIPT_REFUSAL = "can't run this command"
# What redis-py's error texts name the server by: URLs, socket paths, host:port, ('host', port).
# Messages that reach clients say "<redis>" instead: where the server keeps its Redis is not theirs
# to know (the full error stays chained to StoreUnavailable, for tracebacks).
_REDIS_ADDRESS = re.compile(
    r"[A-Za-z][\w+.-]*://[^\s,;'\"()]+"  # a URL
    r"|(?<![\w/])(?:/[\w@%+~.-]*[\w@%+~-])+/?"  # an absolute path
    r"|(?:\[[0-9A-Fa-f:.]+\]|\b[\w-]+(?:\.[\w-]+)*):\d{1,5}\b"  # host:port
    r"|\('[^']*', \d+(?:, \d+)*\)"  # a socket address as Python prints it
)


class StoreUnavailable(JourneymanError):
    """Redis could not be reached (refused, timed out, loading, cluster down)."""


class StoreRefused(StoreUnavailable):
    """Redis refused journeyman: a wrong user or password, or an ACL without a command the
    service needs. Not transient: fix the URL or the ACL."""


class unavailable_on_network_errors:  # lower case: used as a function, like contextlib's
    """Re-raise network-family errors as StoreUnavailable, and refusals (credentials, ACL) as
    StoreRefused, chained to the cause. Never the URL: it may hold a password; nor any other
    address of Redis (paths, host:port): the message reaches clients.

    A RedisClusterException counts by its chain: redis-py raises a failed slot map refresh as
    one, from the CLUSTERDOWN or connection error that asked for the refresh (or the refusal
    that failed it); one with neither in its chain (keys of two slots) is a bug, raised as is.

    A class rather than a generator: every Redis round trip of a decision goes through one, and
    contextlib's machinery was four more Python calls each.
    """

    __slots__ = ("_operation",)

    def __init__(self, operation: str) -> None:
        self._operation = operation

    def __enter__(self) -> None:
        return None

    async def __aenter__(self) -> None:  # also as `async with` (`Store._calling`)
        return None

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(kind, error, traceback)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None or not isinstance(error, _TRANSLATED):
            return  # nothing to translate: an error goes on as it is
        operation = self._operation
        by_chain = isinstance(error, redis_errors.RedisClusterException)
        chain = error_chain(error) if by_chain else [error]
        what = f"{type(error).__name__}: {_REDIS_ADDRESS.sub('<redis>', str(error))}"
        refused = any(isinstance(each, REFUSED_ERRORS) for each in chain) or (
            isinstance(error, redis_errors.ResponseError) and _SCRIPT_REFUSAL in str(error)
        )
        if refused:
            raise StoreRefused(
                f"Redis refused journeyman ({operation}): {what}; check the user and password in"
                " --redis-url / JOURNEYMAN_REDIS_URL and that its ACL allows"
                f" {', '.join(COMMANDS_NEEDED)} on the key prefix"
            ) from error
        if not any(isinstance(each, NETWORK_ERRORS) for each in chain):
            return
        raise StoreUnavailable(f"Redis is unreachable ({operation}): {what}") from error


_TRANSLATED = (redis_errors.RedisError, redis_errors.RedisClusterException, OSError)
