// The stock socket.io-client across API Gateway's forced closes, with connection state
// recovery. Run by the Rust e2e test `socket_io_client_recovers_across_forced_closes`
// against a stack whose gateway closes every connection 3 seconds after it opened (as API
// Gateway does at 2 hours): no client option is needed for recovery.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { closeAll, connect, emitAck, expectNoEvent, login, nextEvent, sioClient } from "../lib.mjs";

after(closeAll);

function once(socket, event, timeoutMs = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, (v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

test("missed messages, receipts and typing arrive once, in order, and socket.recovered is true", { timeout: 40000 }, async () => {
  const [bob, alice] = [await login(), await login()];
  const b = sioClient(bob.token, {
    label: "bob",
    reconnection: true,
    reconnectionDelay: 1500,
    reconnectionDelayMax: 1500,
    randomizationFactor: 0,
  });
  const first = once(b, "connect");
  b.connect();
  await first;
  assert.equal(b.recovered, false);
  await nextEvent(b, "system", undefined, (d) => d?.type === "welcome");
  const mine = await emitAck(b, "send_message", { to: alice.user_id, text: "from bob" });
  assert.ok(mine.message_id, JSON.stringify(mine));
  // Its echo (every device of the sender gets its own messages).
  await nextEvent(b, "message", undefined, (m) => m.message_id === mine.message_id);

  const seen = new Set();
  // Round 1: the first connection (no offsets yet); round 2: a recovered one (offsets).
  for (const round of [1, 2]) {
    assert.equal(await nextEvent(b, "$disconnect", 8000), "transport close");
    // While Bob is away, Alice (on a connection of her own) types, reads and writes.
    const a = await connect(alice.token);
    await emitAck(a, "typing", { to: bob.user_id, typing: true });
    if (round === 1) await emitAck(a, "read", { message_id: mine.message_id });
    const texts = [0, 1, 2].map((i) => `round ${round} message ${i}`);
    for (const text of texts) {
      const ack = await emitAck(a, "send_message", { to: bob.user_id, text });
      assert.ok(ack.message_id, JSON.stringify(ack));
    }
    a.disconnect();

    await once(b, "connect");
    assert.equal(b.recovered, true, `round ${round}: not recovered`);
    // The typing and (round 1) the read receipt Bob missed, then the messages, in order.
    const typing = await nextEvent(b, "typing", 6000, (t) => t.from === alice.user_id && t.typing);
    assert.equal(typing.from, alice.user_id);
    if (round === 1) {
      const read = await nextEvent(b, "read", 6000, (r) => r.message_id === mine.message_id);
      assert.equal(read.by, alice.user_id);
    }
    for (const text of texts) {
      const m = await nextEvent(b, "message", 6000);
      assert.equal(m.text, text);
      assert.ok(!seen.has(m.message_id), `twice: ${text}`);
      seen.add(m.message_id);
    }
  }
  // Nothing came twice.
  await expectNoEvent(b, "message", 800);
  await expectNoEvent(b, "read", 200);
  assert.equal(b.recovered, true);
});
