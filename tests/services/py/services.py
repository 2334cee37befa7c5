"""Restate Python SDK services for keel's end-to-end tests.

Serve from this directory with the venv made by ../setup.sh:

    .venv/bin/hypercorn --config hypercorn.toml --bind 127.0.0.1:9081 services:app

Hypercorn answers h2c with prior knowledge on a plain TCP bind, and the SDK then reports
BIDI_STREAM (it derives the protocol mode from the HTTP version of the discovery request).
Keep a single worker: SideEffects.flaky counts attempts in process memory.

These are the twins of ../ts/services.mjs with a `Py` prefix on every service name, so both
endpoints can be registered with the same keel. Handler names and semantics are the same;
keep the two in step. Handlers are small and deterministic: all non-determinism goes through
the context.
"""

from datetime import timedelta
from typing import Any, Dict, List, Optional

import restate
from restate import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    RunOptions,
    TerminalError,
    WorkflowContext,
    WorkflowSharedContext,
)

# PyGreeter: a stateless service.
greeter = restate.Service("PyGreeter")


@greeter.handler()
async def greet(_ctx: Context, name: str) -> str:
    """Returns "Hello, <name>!"."""
    return f"Hello, {name}!"


@greeter.handler("greetTwice")
async def greet_twice(ctx: Context, name: str) -> List[str]:
    """Two sequential request-response calls to PyGreeter.greet.

    "Ann" -> ["Hello, Ann!", "Hello, Ann again!"]; distinct arguments so that a runtime mixing
    up completions shows.
    """
    first = await ctx.service_call(greet, arg=name)
    second = await ctx.service_call(greet, arg=f"{name} again")
    return [first, second]


@greeter.handler("failTerminal")
async def fail_terminal(_ctx: Context) -> None:
    """Fails without retries: the caller sees code 418, message "boom"."""
    raise TerminalError("boom", status_code=418)


@greeter.handler("sleepThenEcho")
async def sleep_then_echo(ctx: Context, ms: int) -> int:
    """Durable timer: sleeps `ms` milliseconds, then returns `ms`."""
    await ctx.sleep(timedelta(milliseconds=ms))
    return ms


# PyCounter: a virtual object with one state entry, `count`.
counter = restate.VirtualObject("PyCounter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    """Exclusive: count += n, returns the new count."""
    current = await ctx.get("count", type_hint=int) or 0
    new = current + n
    ctx.set("count", new)
    return new


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    """Shared: the current count, 0 when unset."""
    return await ctx.get("count", type_hint=int) or 0


@counter.handler()
async def reset(ctx: ObjectContext) -> None:
    """Exclusive: clears every state entry of this key; empty response."""
    ctx.clear_all()


@counter.handler(kind="shared")
async def keys(ctx: ObjectSharedContext) -> List[str]:
    """Shared: the state keys, sorted."""
    return sorted(await ctx.state_keys())


# Attempts of PySideEffects.flaky's run, per "<invocation id>/<key>". In-process on purpose:
# the run fails twice and succeeds on the third attempt, whichever way the retries happen
# (the SDK retrying the run inside one attempt, or the runtime re-invoking the handler).
flaky_attempts: Dict[str, int] = {}

# PySideEffects: a service exercising ctx.run retries.
side_effects = restate.Service("PySideEffects")


@side_effects.handler()
async def flaky(ctx: Context, key: str) -> int:
    """Returns the number of attempts the run needed: 3."""
    run_id = f"{ctx.request().id}/{key}"

    def attempt() -> int:
        count = flaky_attempts.get(run_id, 0) + 1
        flaky_attempts[run_id] = count
        if count < 3:
            raise RuntimeError(f"flaky {key}: attempt {count} failed")
        return count

    return await ctx.run_typed("flaky", attempt, RunOptions(type_hint=int))


# PySignup: a workflow blocked on the durable promise "confirm".
signup = restate.Workflow("PySignup")


@signup.main()
async def run(ctx: WorkflowContext, _email: str) -> str:
    """The workflow handler: waits for confirm(value), returns "confirmed:<value>"."""
    value = await ctx.promise("confirm", type_hint=str).value()
    return f"confirmed:{value}"


@signup.handler()
async def confirm(ctx: WorkflowSharedContext, value: str) -> None:
    """Shared: resolves the promise; empty response."""
    await ctx.promise("confirm", type_hint=str).resolve(value)


@signup.handler()
async def status(ctx: WorkflowSharedContext) -> Optional[str]:
    """Shared: the promise's value, or an empty response while unresolved."""
    return await ctx.promise("confirm", type_hint=str).peek()


# PyAwaiter: awakeables and delayed sends.
awaiter = restate.Service("PyAwaiter")


@awaiter.handler("waitForAwakeable")
async def wait_for_awakeable(ctx: Context) -> str:
    """Creates an awakeable, has PyAwaiter.resolveLater resolve it through a one-way call,
    returns its value: "done"."""
    awakeable_id, promise = ctx.awakeable(type_hint=str)
    ctx.service_send(resolve_later, arg=awakeable_id)
    return await promise


@awaiter.handler("resolveLater")
async def resolve_later(ctx: Context, awakeable_id: str) -> None:
    """Resolves the awakeable `awakeable_id` with "done"; empty response."""
    ctx.resolve_awakeable(awakeable_id, "done")


@awaiter.handler("sendDelayed")
async def send_delayed(ctx: Context, req: Dict[str, Any]) -> str:
    """{key, ms, n = 1}: one-way send of PyCounter/<key>/add(n), delivered after `ms`
    milliseconds. Returns "scheduled" without waiting for the delivery."""
    ctx.object_send(add, key=req["key"], arg=req.get("n", 1), send_delay=timedelta(milliseconds=req["ms"]))
    return "scheduled"


# PySteps: a workflow of three durable ctx.run steps (the benchmark's third scenario).
steps = restate.Workflow("PySteps")


@steps.main(name="run")
async def run_steps(ctx: WorkflowContext, n: int) -> int:
    """n -> n + 3: each step adds one to the previous step's journaled result."""
    value = n
    for step in ["one", "two", "three"]:
        previous = value
        value = await ctx.run_typed(step, lambda: previous + 1, RunOptions(type_hint=int))
    return value


app = restate.app(services=[greeter, counter, side_effects, signup, awaiter, steps])
