// The delivery contract, with the stock socket.io-client against the local gateway as
// `make test` runs it (several warm instances per function, one connection's frames handed
// to the functions concurrently): the recipient gets each message exactly once, in the
// order of history, across a reconnect; `delivered` once per message with history's
// timestamp; `read` and `read_ack` once per first read; a reused client_id with other
// content is refused. (Many devices and reconnect storms: tests/tests/e2e/delivery.rs.)

import assert from "node:assert/strict";
import { after, test } from "node:test";

import {
  TEST_TIMEOUT_MS,
  closeAll,
  connect,
  emitAck,
  expectNoEvent,
  history,
  login,
  nextEvent,
} from "./lib.mjs";

after(closeAll);

/** Every message of a conversation in strict history order (all pages). */
async function strictHistory(token, otherId) {
  const out = [];
  let before = "";
  for (;;) {
    const page = await history(token, otherId, `?order=strict&limit=200${before}`);
    out.unshift(...page.messages);
    if (!page.has_more) return out;
    before = `&before=${page.next_before}`;
  }
}

/** Collects `n` `message` events from `fromId` on `sock`, in arrival order. */
async function messagesFrom(sock, fromId, n, timeoutMs = 15000) {
  const got = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < n) {
    const left = deadline - Date.now();
    assert.ok(left > 0, `${sock.inbox.label}: got ${got.length} of ${n} messages`);
    got.push(await nextEvent(sock, "message", left, (m) => m.from === fromId));
  }
  return got;
}

function assertNoDuplicates(ids, what) {
  const seen = new Set();
  for (const id of ids) {
    assert.ok(!seen.has(id), `${what}: ${id} arrived twice`);
    seen.add(id);
  }
}

// One pair: A sends `before` messages (each waiting for its ack) while B is offline, then
// `during` more while B connects. Returns what went wrong, per check.
async function reconnectRace(pair, before, during) {
  const [alice, bob] = await Promise.all([login(), login()]);
  const a = await connect(alice.token, { label: `alice${pair}` });
  const acked = [];
  const send = async (i) => {
    // A correctness test, not a latency one: 10 pairs share two cores with the rest of the
    // suite, so an ack may take a while.
    const m = await emitAck(
      a,
      "send_message",
      { to: bob.user_id, text: `p${pair} m${i}`, client_id: `p${pair}-${i}` },
      20000,
    );
    assert.ok(m.message_id, `send ${i}: ${JSON.stringify(m)}`);
    acked.push(m);
  };
  for (let i = 0; i < before; i++) await send(i);
  const sending = (async () => {
    for (let i = before; i < before + during; i++) await send(i);
  })();
  const b = await connect(bob.token, { label: `bob${pair}` });
  await sending;
  const total = before + during;
  const arrived = await messagesFrom(b, alice.user_id, total, 60000);
  // Nothing more may come (a duplicate would arrive within the latency illusion's range).
  await expectNoEvent(b, "message", 600, (m) => m.from === alice.user_id);
  const ids = arrived.map((m) => m.message_id);
  assertNoDuplicates(ids, `pair ${pair}`);
  // A sender that waits for each ack: stored and delivered in its order.
  assert.deepEqual(
    arrived.map((m) => m.text),
    acked.map((m) => m.text),
    `pair ${pair}: arrival order is the send order`,
  );
  const hist = await strictHistory(bob.token, alice.user_id);
  assert.deepEqual(
    hist.map((m) => m.message_id),
    ids,
    `pair ${pair}: arrival order is history's order`,
  );
  // `delivered`: once per message, with the timestamp history shows.
  const delivered = [];
  const deadline = Date.now() + 10000;
  while (delivered.length < total) {
    const left = deadline - Date.now();
    assert.ok(left > 0, `pair ${pair}: ${delivered.length} of ${total} delivered notices`);
    delivered.push(await nextEvent(a, "delivered", left));
  }
  await expectNoEvent(a, "delivered", 300);
  assertNoDuplicates(
    delivered.map((d) => d.message_id),
    `pair ${pair} delivered`,
  );
  const histAfter = new Map((await strictHistory(alice.token, bob.user_id)).map((m) => [m.message_id, m]));
  for (const d of delivered) {
    assert.equal(d.to, bob.user_id);
    assert.equal(d.delivered_at, histAfter.get(d.message_id)?.delivered_at, `pair ${pair}: delivered_at`);
  }
  a.disconnect();
  b.disconnect();
}

test(
  "reconnect race: 10 pairs x 120 messages, exactly once and in history's order",
  { timeout: 120000 },
  async () => {
    await Promise.all(Array.from({ length: 10 }, (_, i) => reconnectRace(i, 60, 60)));
  },
);

test("read and read_ack once per first read; a second read only acks", { timeout: TEST_TIMEOUT_MS }, async () => {
  const [alice, bob] = await Promise.all([login(), login()]);
  const [a, b] = await Promise.all([connect(alice.token), connect(bob.token)]);
  const m = await emitAck(a, "send_message", { to: bob.user_id, text: "read me" });
  await nextEvent(b, "message", undefined, (x) => x.message_id === m.message_id);
  const first = await emitAck(b, "read", { message_id: m.message_id });
  const second = await emitAck(b, "read", { message_id: m.message_id });
  assert.equal(second.read_at, first.read_at);
  const receipt = await nextEvent(a, "read", undefined, (r) => r.message_id === m.message_id);
  assert.equal(receipt.read_at, first.read_at);
  const ack = await nextEvent(b, "read_ack", undefined, (r) => r.message_id === m.message_id);
  assert.equal(ack.read_at, first.read_at);
  await Promise.all([
    expectNoEvent(a, "read", 500, (r) => r.message_id === m.message_id),
    expectNoEvent(b, "read_ack", 500, (r) => r.message_id === m.message_id),
  ]);
  a.disconnect();
  b.disconnect();
});

test("a client_id reused with another text or recipient is refused", { timeout: TEST_TIMEOUT_MS }, async () => {
  const [alice, bob, carol] = await Promise.all([login(), login(), login()]);
  const a = await connect(alice.token);
  const first = await emitAck(a, "send_message", { to: bob.user_id, text: "one", client_id: "dup-1" });
  const retry = await emitAck(a, "send_message", { to: bob.user_id, text: "one", client_id: "dup-1" });
  assert.equal(retry.message_id, first.message_id);
  const otherText = await emitAck(a, "send_message", { to: bob.user_id, text: "two", client_id: "dup-1" });
  assert.equal(otherText.error?.code, "client_id_conflict", JSON.stringify(otherText));
  const otherTo = await emitAck(a, "send_message", { to: carol.user_id, text: "one", client_id: "dup-1" });
  assert.equal(otherTo.error?.code, "client_id_conflict", JSON.stringify(otherTo));
  const hist = await strictHistory(alice.token, bob.user_id);
  assert.deepEqual(hist.map((m) => m.text), ["one"]);
  assert.equal((await strictHistory(alice.token, carol.user_id)).length, 0);
  a.disconnect();
});
