// The stock socket.io-client with its DEFAULT transports: Engine.IO long-polling first
// (`GET`/`POST /socket.io/?EIO=4&transport=polling`), then the upgrade to WebSocket; and a
// client that stays on polling (`transports: ["polling"]`). Each chats with a
// WebSocket-only peer (lib's `connect`), and every event arrives exactly once.

import { test, afterEach, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import {
  BASE_URL,
  TEST_TIMEOUT_MS,
  adopt,
  assertMessage,
  assertTimestamp,
  closeAll,
  connect,
  emitAck,
  expectNoEvent,
  loginMany,
  nextEvent,
  nextEvents,
  untilConnected,
  waitUntil,
} from "./lib.mjs";

afterEach(closeAll);
after(closeAll);

const opts = { timeout: TEST_TIMEOUT_MS };
const MESSAGE_KEYS = ["client_id", "created_at", "from", "message_id", "text", "to"];
/** How long a "nothing else arrives" check waits. */
const QUIET_MS = 800;

const isError = (d) => d?.type === "error";
const byId = (id) => (m) => m?.message_id === id;

/** How many `name` events `sock` received in all (consumed or not). */
const countOf = (sock, name) => sock.inbox.log.filter((n) => n === name).length;

/**
 * Watches a stock client's engine from the moment it is made (call right after `io(...)`,
 * in the same tick: the engine and its first transport exist synchronously, and no
 * upgrade can have happened yet). Reconnections would hide a dropped session, so they are
 * counted too.
 */
function watchEngine(socket) {
  const engine = socket.io.engine;
  assert.ok(engine, "the stock client did not open its engine at once (autoConnect)");
  const seen = {
    engine,
    first: engine.transport?.name,
    upgrades: [],
    upgradeErrors: [],
    reconnectAttempts: 0,
  };
  engine.on("upgrade", (t) => seen.upgrades.push(t.name));
  engine.on("upgradeError", (e) => seen.upgradeErrors.push(String(e?.message ?? e)));
  socket.io.on("reconnect_attempt", () => seen.reconnectAttempts++);
  return seen;
}

/** Connects an adopted stock client and checks its `system` welcome. */
async function welcomed(sock, user) {
  try {
    await untilConnected(sock, 8000);
  } catch (err) {
    // A transport error says little by itself: add the HTTP status (or cause) it carries.
    const detail = err?.description ?? err?.context?.status;
    throw new Error(
      `${sock.inbox.label}: could not connect (transport ${sock.io.engine?.transport?.name}): ` +
        `${err?.message ?? err}${detail === undefined ? "" : ` (${String(detail?.message ?? detail)})`}`,
    );
  }
  const welcome = await nextEvent(sock, "system", 6000, (d) => d?.type === "welcome");
  assert.deepEqual(welcome, { type: "welcome", user_id: user.user_id, pending: 0 });
  return welcome;
}

function assertDelivered(d, ack, toUser) {
  assert.deepEqual(Object.keys(d).sort(), ["delivered_at", "message_id", "to"], JSON.stringify(d));
  assert.equal(d.message_id, ack.message_id);
  assert.equal(d.to, toUser.user_id);
  const at = assertTimestamp(d.delivered_at, "delivered_at");
  assert.ok(at >= Date.parse(ack.created_at), "delivered_at precedes created_at");
}

/**
 * `from` (user `fromUser`) sends `text` to `toUser` (connected as `to`) with an ack, and
 * checks (consuming them) the ack, the recipient's `message` (the same object), the
 * sender's own echo, and the sender's `delivered`. Returns the ack.
 */
async function exchange(from, fromUser, to, toUser, text, clientId) {
  const ack = await emitAck(from, "send_message", { to: toUser.user_id, text, client_id: clientId });
  assert.deepEqual(Object.keys(ack ?? {}).sort(), MESSAGE_KEYS, `send_message ack: ${JSON.stringify(ack)}`);
  assertMessage(ack, { from: fromUser.user_id, to: toUser.user_id, text, client_id: clientId });
  assert.deepEqual(await nextEvent(to, "message", undefined, byId(ack.message_id)), ack);
  assert.deepEqual(await nextEvent(from, "message", undefined, byId(ack.message_id)), ack);
  assertDelivered(await nextEvent(from, "delivered", undefined, byId(ack.message_id)), ack, toUser);
  return ack;
}

test("the seed README's client snippet verbatim: starts on polling, upgrades to websocket, chats both ways exactly once", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const b = await connect(bob.token, { label: "bob (websocket only)" });

  const token = alice.token;
  // The seed README's snippet, `io("http://localhost:8000", { auth: { token } })`, with
  // only the URL changed: no transports (polling, then websocket), default reconnection.
  const socket = io(BASE_URL, { auth: { token } });
  const a = adopt(socket, "alice (seed snippet)");
  const seen = watchEngine(socket);
  assert.equal(seen.first, "polling", "the stock client's first transport");

  await welcomed(a, alice);

  // Chat at once, both ways at the same time: the upgrade is probably under way, and
  // nothing may be lost or doubled across it.
  const early = await Promise.all([
    exchange(a, alice, b, bob, "alice → bob, right after connect", "seed-a1"),
    exchange(b, bob, a, alice, "bob → alice, right after connect", "seed-b1"),
  ]);

  await waitUntil(
    () => socket.io.engine.transport?.name === "websocket",
    8000,
    () =>
      `upgrade to websocket (transport now ${socket.io.engine.transport?.name}, ` +
      `upgrade errors ${JSON.stringify(seen.upgradeErrors)})`,
  );
  assert.deepEqual(seen.upgrades, ["websocket"]);

  // On the websocket, both ways again.
  const late = [
    await exchange(a, alice, b, bob, "alice → bob, after the upgrade", "seed-a2"),
    await exchange(b, bob, a, alice, "bob → alice, after the upgrade", "seed-b2"),
  ];
  assert.equal(new Set([...early, ...late].map((m) => m.message_id)).size, 4);

  // Exactly once: nothing more comes, and the totals are what was consumed above.
  await Promise.all([
    expectNoEvent(a, "message", QUIET_MS),
    expectNoEvent(a, "delivered", QUIET_MS),
    expectNoEvent(a, "system", QUIET_MS, isError),
    expectNoEvent(a, "$disconnect", QUIET_MS),
    expectNoEvent(b, "message", QUIET_MS),
    expectNoEvent(b, "delivered", QUIET_MS),
    expectNoEvent(b, "system", QUIET_MS, isError),
  ]);
  // Each side: the 2 messages it got and the echoes of its own 2; a delivered per send.
  for (const s of [a, b]) {
    assert.equal(countOf(s, "message"), 4, `${s.inbox.label}: ${s.inbox.log.join(", ")}`);
    assert.equal(countOf(s, "delivered"), 2, `${s.inbox.label}: ${s.inbox.log.join(", ")}`);
  }

  // Still the same session, still on the websocket.
  assert.equal(socket.connected, true);
  assert.equal(socket.io.engine, seen.engine, "the engine was replaced (the session was lost)");
  assert.equal(seen.reconnectAttempts, 0, "the stock client had to reconnect");
  assert.equal(socket.io.engine.transport.name, "websocket");
  assert.deepEqual(seen.upgrades, ["websocket"]);
});

test("a client that stays on polling: typing, 5 messages in order once each, delivered, read and read_ack", opts, async () => {
  const [alice, bob] = await loginMany(2);
  const w = await connect(bob.token, { label: "bob (websocket only)" });

  const token = alice.token;
  const socket = io(BASE_URL, { auth: { token }, transports: ["polling"] });
  const p = adopt(socket, "alice (polling only)");
  const seen = watchEngine(socket);
  assert.equal(seen.first, "polling");
  await welcomed(p, alice);
  assert.equal(socket.io.engine.transport.name, "polling");

  // Typing, both ways (each waited for before the next, as in chat.test.mjs).
  w.emit("typing", { to: alice.user_id, typing: true });
  assert.deepEqual(await nextEvent(p, "typing"), { from: bob.user_id, typing: true });
  w.emit("typing", { to: alice.user_id, typing: false });
  assert.deepEqual(await nextEvent(p, "typing"), { from: bob.user_id, typing: false });
  p.emit("typing", { to: bob.user_id, typing: true });
  assert.deepEqual(await nextEvent(w, "typing"), { from: alice.user_id, typing: true });
  p.emit("typing", { to: bob.user_id, typing: false });
  assert.deepEqual(await nextEvent(w, "typing"), { from: alice.user_id, typing: false });

  // Five numbered messages from the websocket peer: on polling, in order, once each.
  const texts = [1, 2, 3, 4, 5].map((i) => `numbered ${i}`);
  const acks = [];
  for (const [i, text] of texts.entries()) {
    const clientId = `poll-${i + 1}`;
    const ack = await emitAck(w, "send_message", { to: alice.user_id, text, client_id: clientId });
    assert.deepEqual(Object.keys(ack ?? {}).sort(), MESSAGE_KEYS, `send_message ack: ${JSON.stringify(ack)}`);
    assertMessage(ack, { from: bob.user_id, to: alice.user_id, text, client_id: clientId });
    acks.push(ack);
  }
  const ids = acks.map((m) => m.message_id);
  const got = await nextEvents(p, "message", texts.length, undefined, (m) => m?.from === bob.user_id);
  assert.deepEqual(
    got.map((m) => m.message_id),
    ids,
    `in the order sent: ${JSON.stringify(got.map((m) => m.text))}`,
  );
  got.forEach((m, i) => assert.deepEqual(m, acks[i]));

  // The sender's echoes, and one delivered per message.
  const echoes = await nextEvents(w, "message", texts.length, undefined, (m) => m?.from === bob.user_id);
  assert.deepEqual(echoes.map((m) => m.message_id).sort(), [...ids].sort());
  const delivered = await nextEvents(w, "delivered", texts.length);
  assert.deepEqual(delivered.map((d) => d.message_id).sort(), [...ids].sort());
  for (const d of delivered) assertDelivered(d, acks.find((m) => m.message_id === d.message_id), alice);

  // The polling client reads all five: a read_ack each to it, a read receipt each to bob.
  // (Frames of one connection may be handled concurrently: match by message_id.)
  for (const id of ids) p.emit("read", { message_id: id });
  const readAcks = await nextEvents(p, "read_ack", ids.length);
  assert.deepEqual(readAcks.map((r) => r.message_id).sort(), [...ids].sort());
  for (const r of readAcks) {
    assert.deepEqual(Object.keys(r).sort(), ["message_id", "read_at"]);
    const readAt = assertTimestamp(r.read_at, "read_at");
    assert.ok(readAt >= Date.parse(acks.find((m) => m.message_id === r.message_id).created_at));
  }
  const receipts = await nextEvents(w, "read", ids.length);
  assert.deepEqual(
    [...receipts].sort((x, y) => x.message_id.localeCompare(y.message_id)),
    [...readAcks]
      .sort((x, y) => x.message_id.localeCompare(y.message_id))
      .map((r) => ({ message_id: r.message_id, by: alice.user_id, read_at: r.read_at })),
  );

  // From the polling side: ack, message, echo and delivered; then bob reads it.
  const reply = await exchange(p, alice, w, bob, "a reply from the polling side", "poll-reply");
  w.emit("read", { message_id: reply.message_id });
  const ack = await nextEvent(w, "read_ack");
  assert.deepEqual(Object.keys(ack).sort(), ["message_id", "read_at"]);
  assert.equal(ack.message_id, reply.message_id);
  assertTimestamp(ack.read_at, "read_at");
  assert.deepEqual(await nextEvent(p, "read"), {
    message_id: reply.message_id,
    by: bob.user_id,
    read_at: ack.read_at,
  });

  // Exactly once: nothing more comes, and the totals are what was consumed above.
  const names = ["message", "delivered", "read", "read_ack", "typing"];
  await Promise.all([
    ...names.flatMap((n) => [expectNoEvent(p, n, QUIET_MS), expectNoEvent(w, n, QUIET_MS)]),
    expectNoEvent(p, "system", QUIET_MS, isError),
    expectNoEvent(w, "system", QUIET_MS, isError),
    expectNoEvent(p, "$disconnect", QUIET_MS),
  ]);
  const expected = {
    // 5 received + the echo of its reply; bob: 5 echoes + the reply.
    message: [6, 6],
    delivered: [1, 5],
    read: [1, 5],
    read_ack: [5, 1],
    typing: [2, 2],
  };
  for (const [name, [atP, atW]] of Object.entries(expected)) {
    assert.equal(countOf(p, name), atP, `polling client, "${name}": ${p.inbox.log.join(", ")}`);
    assert.equal(countOf(w, name), atW, `websocket peer, "${name}": ${w.inbox.log.join(", ")}`);
  }

  // Never upgraded, never reconnected.
  assert.equal(socket.connected, true);
  assert.equal(socket.io.engine, seen.engine, "the engine was replaced (the session was lost)");
  assert.equal(seen.reconnectAttempts, 0, "the stock client had to reconnect");
  assert.deepEqual(seen.upgrades, []);
  assert.equal(socket.io.engine.transport.name, "polling");
});
