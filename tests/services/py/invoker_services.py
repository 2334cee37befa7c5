"""Restate Python SDK services for keel's invoker end-to-end tests (tests/tests/invoker.rs).

Serve from this directory with the venv made by ../setup.sh:

    .venv/bin/hypercorn --config hypercorn.toml --bind 127.0.0.1:9081 invoker_services:app

The Python twins of the retry and HTTP/1.1 services of ../ts/invoker.mjs, with a `Py`
prefix. Hypercorn answers both h2c (prior knowledge) and HTTP/1.1; registered with
`use_http_11: true`, the SDK reports REQUEST_RESPONSE. Keep a single worker: attempts are
counted in process memory.
"""

from datetime import timedelta
from typing import Dict

import restate
from restate import Context, InvocationRetryPolicy, ObjectContext

# Attempts per invocation id (each attempt runs the handler from the start).
attempts: Dict[str, int] = {}


def count_attempt(ctx: Context) -> None:
    invocation_id = ctx.request().id
    attempts[invocation_id] = attempts.get(invocation_id, 0) + 1


def quick(on_max_attempts: str) -> InvocationRetryPolicy:
    """3 attempts, 50 ms apart at first, then `on_max_attempts`."""
    return InvocationRetryPolicy(
        initial_interval=timedelta(milliseconds=50),
        max_interval=timedelta(milliseconds=200),
        max_attempts=3,
        on_max_attempts=on_max_attempts,  # type: ignore[arg-type]
    )


# PyRetries: handlers that always fail with a retryable error.
retries = restate.Service("PyRetries")


@retries.handler("failPause", invocation_retry_policy=quick("pause"))
async def fail_pause(ctx: Context) -> None:
    """Raises a retryable error on every attempt; paused after 3 attempts."""
    count_attempt(ctx)
    raise ValueError("always fails")


@retries.handler("failKill", invocation_retry_policy=quick("kill"))
async def fail_kill(ctx: Context) -> None:
    """The same, killed after 3 attempts: completes with the last failure."""
    count_attempt(ctx)
    raise ValueError("always fails")


@retries.handler("attempts")
async def attempts_of(_ctx: Context, invocation_id: str) -> int:
    """How many attempts of invocation `invocation_id` ran in this process."""
    return attempts.get(invocation_id, 0)


# PyHttp1: state, ctx.run and sleep, for the HTTP/1.1 request-response deployment.
http1 = restate.VirtualObject("PyHttp1")


@http1.handler("add")
async def add(ctx: ObjectContext, n: int) -> str:
    """count += n (state), a ctx.run, a 100 ms sleep; returns "<count>:<run result>"."""
    count = (await ctx.get("count", type_hint=int) or 0) + n
    ctx.set("count", count)

    async def double() -> int:
        return count * 2

    doubled = await ctx.run_typed("double", double)
    await ctx.sleep(timedelta(milliseconds=100))
    return f"{count}:{doubled}"


app = restate.app(services=[retries, http1])
