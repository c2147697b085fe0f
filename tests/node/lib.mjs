// Shared helpers for the end-to-end suite: REST login, Socket.IO and plain-JSON WebSocket
// clients whose incoming events are buffered (so no event is missed between two awaits),
// bounded waiters, and cleanup of every socket a test opened.
//
// Environment (set by the Rust harness): CHAT_HTTP_URL, CHAT_PING_INTERVAL_MS,
// CHAT_PING_TIMEOUT_MS.

import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { io } from "socket.io-client";
import WebSocket from "ws";

export const BASE_URL = (process.env.CHAT_HTTP_URL || "http://127.0.0.1:8000").replace(/\/+$/, "");
export const WS_URL = BASE_URL.replace(/^http/, "ws");
export const PING_INTERVAL_MS = Number(process.env.CHAT_PING_INTERVAL_MS || 25000);
export const PING_TIMEOUT_MS = Number(process.env.CHAT_PING_TIMEOUT_MS || 20000);

/** Default bound for waiting on one server event. */
export const EVENT_TIMEOUT_MS = 4000;
/** Default bound for one HTTP request. */
export const HTTP_TIMEOUT_MS = 5000;
/** Bound for a whole test (node:test `timeout` option). */
export const TEST_TIMEOUT_MS = 20000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Mobile numbers and REST

const AREA_CODES = ["415", "650", "212", "310", "206", "617", "312", "718", "408", "510", "917"];
const usedMobiles = new Set();

/**
 * A fresh, valid US mobile number in E.164 (never the same twice in this process; the
 * space is ~8.8M numbers so collisions between test files are negligible).
 */
export function randomMobile() {
  for (;;) {
    const area = AREA_CODES[randomInt(AREA_CODES.length)];
    // Exchange [2-9][2-9][0-9]: never an N11 service code.
    const exchange = `${randomInt(2, 10)}${randomInt(2, 10)}${randomInt(10)}`;
    const line = String(randomInt(10000)).padStart(4, "0");
    const mobile = `+1${area}${exchange}${line}`;
    if (!usedMobiles.has(mobile)) {
      usedMobiles.add(mobile);
      return mobile;
    }
  }
}

/** A JSON HTTP request; returns `{ status, headers, body }` (body parsed when JSON). */
export async function http(method, path, { body, token, timeoutMs = HTTP_TIMEOUT_MS } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token !== undefined) headers.authorization = token;
  const res = await fetch(`${BASE_URL}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/**
 * Logs a new user in (request_otp + verify) with a fresh mobile.
 * Returns `{ mobile, token, user_id, display_name, expires_at }`.
 */
export async function login(mobile = randomMobile()) {
  const otp = await http("POST", "/users/auth/request_otp", { body: { mobile } });
  assert.equal(otp.status, 200, `request_otp ${mobile}: ${JSON.stringify(otp.body)}`);
  assert.equal(otp.body.mobile, mobile);
  const code = otp.body.otp ?? (await smsCode(mobile));
  assert.match(String(code), /^\d{6}$/);
  const v = await http("POST", "/users/auth/verify", { body: { mobile, otp: code } });
  assert.equal(v.status, 200, `verify ${mobile}: ${JSON.stringify(v.body)}`);
  assert.equal(typeof v.body.token, "string");
  assert.match(v.body.user_id, /^[0-9a-f]{24}$/);
  return { mobile, ...v.body };
}

/**
 * The code in the newest text message to `mobile` (`OTP_MODE=sms`: the local gateway's SNS
 * emulation keeps an outbox at `/local/sms/{mobile}`).
 */
export async function smsCode(mobile) {
  const r = await http("GET", `/local/sms/${encodeURIComponent(mobile)}`);
  assert.equal(r.status, 200, `sms outbox ${mobile}: ${JSON.stringify(r.body)}`);
  const last = r.body.messages.at(-1);
  assert.ok(last, `no text message to ${mobile}`);
  return last.text.match(/\b(\d{6})\b/)[1];
}

/** Logs in `n` fresh users in parallel. */
export function loginMany(n) {
  return Promise.all(Array.from({ length: n }, () => login()));
}

/**
 * `GET /chat/messages/{otherId}` as `token`'s user, in strict order unless `query` names an
 * order (the suite also runs with the experiments on, and artistic chronology reorders).
 */
export async function history(token, otherId, query = "") {
  const strict = query.includes("order=") ? "" : `${query ? "&" : "?"}order=strict`;
  const res = await http("GET", `/chat/messages/${otherId}${query}${strict}`, { token });
  assert.equal(res.status, 200, `history: ${JSON.stringify(res.body)}`);
  return res.body;
}

// ---------------------------------------------------------------------------------------
// Buffered event inbox, shared by Socket.IO and plain-JSON clients

class Inbox {
  constructor(label) {
    this.label = label;
    this.items = []; // { name, data }
    this.waiters = []; // { name, pred, resolve }
    this.log = []; // every event name, in arrival order (consumed or not)
  }

  push(name, data) {
    this.log.push(name);
    const i = this.waiters.findIndex((w) => w.name === name && w.pred(data));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w.resolve(data);
      return;
    }
    this.items.push({ name, data });
  }

  take(name, pred) {
    const i = this.items.findIndex((e) => e.name === name && pred(e.data));
    if (i < 0) return undefined;
    return this.items.splice(i, 1)[0];
  }

  next(name, timeoutMs, pred) {
    const found = this.take(name, pred);
    if (found) return Promise.resolve(found.data);
    return new Promise((resolve, reject) => {
      const waiter = { name, pred, resolve: null };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        const seen = this.items.map((e) => `${e.name}:${JSON.stringify(e.data)}`).join(", ");
        reject(
          new Error(
            `${this.label}: no "${name}" event within ${timeoutMs} ms (unconsumed: [${seen}])`,
          ),
        );
      }, timeoutMs);
      waiter.resolve = (data) => {
        clearTimeout(timer);
        resolve(data);
      };
      this.waiters.push(waiter);
    });
  }
}

const live = new Set();

function inboxOf(sock) {
  assert.ok(sock && sock.inbox instanceof Inbox, "not a socket made by lib.mjs");
  return sock.inbox;
}

/**
 * Waits for (and consumes) the next `name` event on `sock` whose data satisfies `pred`.
 * Events that arrived earlier are buffered, so nothing is missed. Rejects after
 * `timeoutMs`.
 */
export function nextEvent(sock, name, timeoutMs = EVENT_TIMEOUT_MS, pred = () => true) {
  return inboxOf(sock).next(name, timeoutMs, pred);
}

/** Collects `n` `name` events in arrival order (each bounded by `timeoutMs`). */
export async function nextEvents(sock, name, n, timeoutMs = EVENT_TIMEOUT_MS, pred = () => true) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await nextEvent(sock, name, timeoutMs, pred));
  return out;
}

/** Waits `waitMs`, then asserts no (unconsumed) `name` event matching `pred` arrived. */
export async function expectNoEvent(sock, name, waitMs = 600, pred = () => true) {
  // A check that does not wait cannot see a late event, so it could never fail.
  assert.ok(waitMs >= 200, `expectNoEvent needs a real wait (got ${waitMs} ms)`);
  await sleep(waitMs);
  const inbox = inboxOf(sock);
  const hit = inbox.items.find((e) => e.name === name && pred(e.data));
  assert.equal(
    hit,
    undefined,
    `${inbox.label}: unexpected "${name}" event ${hit && JSON.stringify(hit.data)}`,
  );
}

/**
 * Polls `cond` (may be async) every 25 ms until it returns a truthy value, which it
 * returns; rejects after `timeoutMs`. `what` (a string, or a function giving one at the
 * time of failure) describes the condition and what was seen instead.
 */
export async function waitUntil(cond, timeoutMs = EVENT_TIMEOUT_MS, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() >= deadline) {
      const desc = typeof what === "function" ? what() : what;
      throw new Error(`${desc}: not met within ${timeoutMs} ms`);
    }
    await sleep(25);
  }
}

/** The `system` error event (consumed) with the given code. */
export function nextSystemError(sock, code, timeoutMs = EVENT_TIMEOUT_MS) {
  return nextEvent(sock, "system", timeoutMs, (d) => d?.type === "error" && d.code === code);
}

// ---------------------------------------------------------------------------------------
// Socket.IO clients

/**
 * A Socket.IO client for `token` (websocket transport only, no automatic reconnection),
 * not yet connected; every incoming event is buffered in its inbox.
 */
export function sioClient(token, { label, ...ioOpts } = {}) {
  const socket = io(BASE_URL, {
    transports: ["websocket"],
    auth: token === undefined ? {} : { token },
    reconnection: false,
    forceNew: true,
    timeout: 5000,
    autoConnect: false,
    ...ioOpts,
  });
  return adopt(socket, label || `sio(${String(token).slice(0, 6)})`);
}

/**
 * Gives a Socket.IO client made elsewhere (any `io(...)` options, e.g. the stock defaults)
 * the same buffered inbox as `sioClient`'s and registers it for `closeAll`. Call it right
 * after `io(...)`, in the same tick, so no event can arrive before the inbox listens.
 */
export function adopt(socket, label = "sio") {
  socket.inbox = new Inbox(label);
  socket.onAny((name, ...args) => socket.inbox.push(name, args[0]));
  socket.on("disconnect", (reason) => socket.inbox.push("$disconnect", reason));
  live.add(socket);
  return socket;
}

/**
 * Resolves once `socket` is connected (at once if it already is); rejects with the
 * `connect_error` if one comes first, or after `timeoutMs`. Listen before connecting.
 */
export function untilConnected(socket, timeoutMs = 6000) {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
    };
    const onConnect = () => {
      done();
      resolve();
    };
    const onError = (err) => {
      done();
      reject(err);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`connect: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", onConnect);
    socket.once("connect_error", onError);
  });
}

/**
 * Connects a Socket.IO client and waits for the `system` welcome. Returns the socket; the
 * welcome payload is at `socket.welcome`. Messages that follow the welcome stay buffered.
 * Other options are `io(...)` options on top of `sioClient`'s (e.g. `transports`).
 */
export async function connect(token, { timeoutMs = 6000, label, ...ioOpts } = {}) {
  const socket = sioClient(token, { label, ...ioOpts });
  const connected = untilConnected(socket, timeoutMs);
  socket.connect();
  await connected;
  socket.welcome = await nextEvent(socket, "system", timeoutMs, (d) => d?.type === "welcome");
  return socket;
}

/** Emits with an ack, bounded by `timeoutMs` (rejects on timeout). */
export function emitAck(socket, event, data, timeoutMs = EVENT_TIMEOUT_MS) {
  return socket.timeout(timeoutMs).emitWithAck(event, data);
}

// ---------------------------------------------------------------------------------------
// Plain-JSON WebSocket clients

/**
 * A plain-JSON WebSocket client (`ws://host/?token=`) connected and past its welcome
 * (`ws.welcome`). Frames `{event, data}` are buffered in its inbox.
 */
export async function connectJson(token, { timeoutMs = 6000, label } = {}) {
  const ws = new WebSocket(`${WS_URL}/?token=${encodeURIComponent(token)}`, {
    handshakeTimeout: timeoutMs,
  });
  ws.inbox = new Inbox(label || `json(${String(token).slice(0, 6)})`);
  ws.rawFrames = [];
  ws.on("message", (raw, isBinary) => {
    const text = raw.toString();
    ws.rawFrames.push(text);
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      ws.inbox.push("$unparsable", text);
      return;
    }
    ws.inbox.push(frame?.event ?? "$noevent", frame?.data);
  });
  ws.on("close", (code) => ws.inbox.push("$close", code));
  ws.on("error", () => {}); // surfaced through the open promise / $close
  live.add(ws);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ws open: timed out after ${timeoutMs} ms`)), timeoutMs);
    ws.once("open", () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  ws.welcome = await nextEvent(ws, "system", timeoutMs, (d) => d?.type === "welcome");
  return ws;
}

/** Sends one plain-JSON action frame. */
export function sendJson(ws, obj) {
  ws.send(JSON.stringify(obj));
}

/**
 * Opens a raw WebSocket handshake to `url` and reports how it ended:
 * `{ opened: true }` or `{ opened: false, status }` (HTTP status of a refused upgrade).
 */
export function tryHandshake(url, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs });
    live.add(ws);
    ws.on("error", () => {});
    ws.once("unexpected-response", (req, res) => {
      const status = res.statusCode;
      res.resume();
      req.destroy();
      resolve({ opened: false, status });
    });
    ws.once("open", () => {
      ws.close();
      resolve({ opened: true });
    });
    ws.once("close", () => resolve({ opened: false, status: undefined }));
    setTimeout(() => reject(new Error(`handshake to ${url}: no answer in ${timeoutMs} ms`)), timeoutMs).unref();
  });
}

// ---------------------------------------------------------------------------------------
// Cleanup

/**
 * Closes every socket opened through this module (use in afterEach/after): a clean close
 * first, then the TCP socket is destroyed if it is still open shortly after, so a slow
 * closing handshake never holds the test process open.
 */
export async function closeAll() {
  const socks = [...live];
  live.clear();
  for (const s of socks) {
    try {
      if (s instanceof WebSocket) {
        if (s.readyState === WebSocket.OPEN) {
          s.close(1000);
          setTimeout(() => s.terminate(), 200).unref();
        } else if (s.readyState !== WebSocket.CLOSED) {
          s.terminate();
        }
      } else {
        const transport = s.io?.engine?.transport;
        const tcp = transport?.ws?._socket;
        // On the polling transport: the pending long-poll GET (xmlhttprequest-ssl), which
        // the server should answer once it has the close packet.
        const poll = transport?.pollXhr?._xhr;
        s.disconnect();
        s.io?.engine?.close();
        if (tcp) setTimeout(() => tcp.destroy(), 200).unref();
        if (poll) setTimeout(() => poll.abort(), 200).unref();
      }
    } catch {
      // already gone
    }
  }
}

/** Asserts a value is an RFC 3339 timestamp string and returns its epoch ms. */
export function assertTimestamp(v, what = "timestamp") {
  assert.equal(typeof v, "string", `${what} should be a string, got ${JSON.stringify(v)}`);
  const ms = Date.parse(v);
  assert.ok(Number.isFinite(ms), `${what} is not a date: ${v}`);
  return ms;
}

/** Asserts `m` is a message object with exactly the given fields' values. */
export function assertMessage(m, { from, to, text, client_id }) {
  assert.ok(m && typeof m === "object", `message should be an object, got ${JSON.stringify(m)}`);
  assert.match(m.message_id, /^[0-9a-f]{24}$/, "message_id");
  assert.equal(m.from, from, "from");
  assert.equal(m.to, to, "to");
  assert.equal(m.text, text, "text");
  assertTimestamp(m.created_at, "created_at");
  if (client_id !== undefined) assert.equal(m.client_id, client_id, "client_id");
}
