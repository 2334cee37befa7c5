// Drives keel's ingress through Restate's typed TypeScript client,
// @restatedev/restate-sdk-clients, against the services of services.mjs.
// Usage: node typed_client.mjs <ingress url> <run id>
// Prints one JSON object with every observed result; the Rust test
// (tests/tests/typed_client.rs) asserts it exactly.

import * as clients from "@restatedev/restate-sdk-clients";

const [url, run] = process.argv.slice(2);
const ingress = clients.connect({ url });
// Plain JS: a definition only needs the service's name.
const Greeter = { name: "Greeter" };
const Counter = { name: "Counter" };
const Signup = { name: "Signup" };

const out = {};
out.greet = await ingress.serviceClient(Greeter).greet("Ann");

const counter = ingress.objectClient(Counter, `tc-${run}`);
out.add = await counter.add(2);
const once = clients.rpc.opts({ idempotencyKey: `add-${run}` });
out.idempotent = [await counter.add(3, once), await counter.add(3, once)];

const sender = ingress.objectSendClient(Counter, `tc-${run}`);
const send = await sender.add(10, clients.rpc.sendOpts({ idempotencyKey: `send-${run}` }));
const again = await sender.add(10, clients.rpc.sendOpts({ idempotencyKey: `send-${run}` }));
out.send = [send.status, again.status, send.invocationId === again.invocationId];
out.sendResult = await ingress.result(send);
out.count = await counter.get();

const delayed = await ingress.objectSendClient(Counter, `td-${run}`).add(1, clients.rpc.sendOpts({ delay: 200 }));
out.delayed = delayed.status;

const workflow = ingress.workflowClient(Signup, `tw-${run}`);
const submitted = await workflow.workflowSubmit("a@b.c");
out.submitted = submitted.status;
out.outputBefore = (await workflow.workflowOutput()).ready;
await workflow.confirm("yes");
out.attach = await workflow.workflowAttach();
const output = await workflow.workflowOutput();
out.outputAfter = [output.ready, output.result];

try {
  await ingress.serviceClient(Greeter).failTerminal();
  out.failure = "no error";
} catch (e) {
  out.failure = e instanceof clients.HttpCallError ? [e.status, JSON.parse(e.responseText)] : String(e);
}

console.log(JSON.stringify(out));
