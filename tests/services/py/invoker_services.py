"""Restate Python SDK services for keel's invoker end-to-end tests (tests/tests/invoker.rs).

Serve from this directory with the venv made by ../setup.sh:

    .venv/bin/hypercorn --config hypercorn.toml --bind 127.0.0.1:9081 invoker_services:app

The Python twins of the services of ../ts/invoker.mjs (all but the concurrency helper,
Attacher.output, Attacher.runWorkflow and Flow),
with a `Py` prefix. REVISION (default 1) is what PyPinned.wait reports. Hypercorn answers both h2c (prior knowledge) and HTTP/1.1; registered with
`use_http_11: true`, the SDK reports REQUEST_RESPONSE. Keep a single worker: attempts are
counted in process memory.
"""

import asyncio
import os
from datetime import timedelta
from typing import Any, Dict, List

import restate
from restate import Context, InvocationRetryPolicy, ObjectContext, TerminalError

REVISION = int(os.environ.get("REVISION", "1"))

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


# Awakeable ids and invocation ids by the key their handler was called with.
awakeables: Dict[str, str] = {}
invocations: Dict[str, str] = {}

# PyWaiter: handlers that block on an awakeable.
waiter = restate.Service("PyWaiter")


@waiter.handler("wait")
async def wait(ctx: Context, key: str) -> str:
    """Publishes an awakeable under `key`; returns "<value>@1" once it is resolved."""
    count_attempt(ctx)
    awakeable_id, promise = ctx.awakeable(type_hint=str)
    awakeables[key] = awakeable_id
    invocations[key] = ctx.request().id
    return f"{await promise}@{REVISION}"


@waiter.handler("awakeable")
async def awakeable_of(_ctx: Context, key: str) -> str:
    """The awakeable id published under `key`, or "" if none yet."""
    return awakeables.get(key, "")


@waiter.handler("invocation")
async def invocation_of(_ctx: Context, key: str) -> str:
    """The invocation id of the handler called with `key`, or "" if it has not run yet."""
    return invocations.get(key, "")


@waiter.handler("attempts")
async def waiter_attempts(_ctx: Context, invocation_id: str) -> int:
    """How many attempts of invocation `invocation_id` ran in this process."""
    return attempts.get(invocation_id, 0)


# PyPinned: like PyWaiter.wait, but suspends after one second without traffic.
pinned = restate.Service("PyPinned", inactivity_timeout=timedelta(seconds=1))


@pinned.handler("wait")
async def pinned_wait(ctx: Context, key: str) -> str:
    """Publishes an awakeable under `key` (in PyWaiter.awakeable); returns
    "<value>@<REVISION>" once it is resolved."""
    awakeable_id, promise = ctx.awakeable(type_hint=str)
    awakeables[key] = awakeable_id
    return f"{await promise}@{REVISION}"


# PySteps: two ctx.run steps that record every execution in a log file.
steps = restate.Service("PySteps")


@steps.handler("run")
async def run_steps(ctx: Context, req: Dict[str, Any]) -> List[str]:
    """{key, log, gate}: step "one" appends "<key> one" to `log`; step "two" appends
    "<key> two" and then waits until the file `gate` exists. Returns ["one", "two"]."""
    key, log, gate = req["key"], req["log"], req["gate"]

    async def one() -> str:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{key} one\n")
        return "one"

    async def two() -> str:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{key} two\n")
        while not os.path.exists(gate):
            await asyncio.sleep(0.02)
        return "two"

    first = await ctx.run_typed("one", one)
    second = await ctx.run_typed("two", two)
    return [first, second]


# PyFamily: a parent waiting on a child call, for cancellation propagation.
family = restate.Service("PyFamily")


@family.handler("parent")
async def parent(ctx: Context, key: str) -> str:
    """Calls PyWaiter.wait("<key>-child") and returns its answer."""
    return await ctx.service_call(wait, arg=f"{key}-child")


# PySignals: named signals between invocations.
signals = restate.Service("PySignals")


@signals.handler("receive")
async def receive(ctx: Context, key: str) -> str:
    """Publishes its invocation id under `key` (PyWaiter.invocation); returns
    "got <value>" once the named signal "go" arrives."""
    invocations[key] = ctx.request().id
    value = await ctx.signal("go", type_hint=str)
    return f"got {value}"


@signals.handler("send")
async def send(ctx: Context, req: Dict[str, str]) -> str:
    """{target, value}: sends the named signal "go" with `value` to invocation `target`."""
    ctx.resolve_signal(req["target"], "go", req["value"])
    return "sent"


# PyAttacher: waits for the results of invocations it did not start.
attacher = restate.Service("PyAttacher")


@attacher.handler("attach")
async def attach(ctx: Context, invocation_id: str) -> str:
    """Attaches to invocation `invocation_id`: "attached:<its result>" or
    "failed:<code>:<message>"."""
    try:
        result = await ctx.attach_invocation(invocation_id, type_hint=str)
    except TerminalError as e:
        return f"failed:{e.status_code}:{e.message}"
    return f"attached:{result}"


@attacher.handler("waitOnce")
async def wait_once(ctx: Context, key: str) -> str:
    """Calls PyWaiter.wait(`key`) with idempotency key `key`: every caller with
    the same key waits for the one invocation and returns "waited:<its result>"."""
    result = await ctx.service_call(wait, arg=key, idempotency_key=key)
    return f"waited:{result}"


app = restate.app(services=[retries, http1, waiter, pinned, steps, family, signals, attacher])
