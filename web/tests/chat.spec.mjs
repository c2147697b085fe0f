// The web client in Chromium: two people (two browser contexts, and a second device for one
// of them) log in, start a chat by phone number, chat both ways with typing, delivered and
// read ticks and unread badges (cleared live on the other device),
// page back through history, survive the server dropping the socket, and log out. Plus an
// axe-core check and the phone layout. Every wait polls for a condition; no fixed sleeps.
//
// Environment (set by the Rust e2e test): CHAT_HTTP_URL (the gateway), CHAT_CONTROL_URL
// (POST /drop/<user_id> makes the server drop that user's WebSockets), CHAT_SCREENSHOT
// (optional: where to save a screenshot of the chat).

import { createRequire } from "node:module";
import { randomInt } from "node:crypto";
import { test, expect } from "@playwright/test";
import { io } from "socket.io-client";

const require = createRequire(import.meta.url);
const AXE_SOURCE = require("node:fs").readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const BASE = (process.env.CHAT_HTTP_URL || "http://127.0.0.1:8000").replace(/\/+$/, "");
const CONTROL = process.env.CHAT_CONTROL_URL;

const used = new Set();
function randomMobile() {
  for (;;) {
    const exchange = `${randomInt(2, 10)}${randomInt(2, 10)}${randomInt(10)}`;
    const m = `+1415${exchange}${String(randomInt(10000)).padStart(4, "0")}`;
    if (!used.has(m)) {
      used.add(m);
      return m;
    }
  }
}

async function login(page, mobile) {
  await page.goto("/");
  await page.getByLabel("Phone number", { exact: true }).fill(mobile);
  await page.getByRole("button", { name: "Send code" }).click();
  // OTP_MODE=sms: the code goes by text message; the local gateway keeps an outbox.
  await expect(page.locator("#code-hint")).toContainText("Enter the code sent to");
  const outbox = await page.request.get(`/local/sms/${encodeURIComponent(mobile)}`);
  const { messages } = await outbox.json();
  const code = messages.at(-1).text.match(/\b(\d{6})\b/)[1];
  await page.getByLabel("Code").fill(code);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.locator("#conn")).toHaveText("Online");
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem("chat.session")));
  expect(session.token).toBeTruthy();
  return session;
}

/** A login through the REST API alone (another session of the same user). */
async function apiLogin(mobile) {
  const post = (path, body) =>
    fetch(`${BASE}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  expect((await post("/users/auth/request_otp", { mobile })).status).toBe(200);
  const { messages } = await (await fetch(`${BASE}/local/sms/${encodeURIComponent(mobile)}`)).json();
  const otp = messages.at(-1).text.match(/\b(\d{6})\b/)[1];
  const verified = await post("/users/auth/verify", { mobile, otp });
  expect(verified.status).toBe(200);
  return verified.json();
}

/** axe-core on the page as it is: no serious or critical violations. */
async function expectAccessible(page, what) {
  await page.addScriptTag({ content: AXE_SOURCE });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(bad, `${what}: ${JSON.stringify(bad)}`).toEqual([]);
}

const bubbles = (page) => page.locator("#messages > li");
const bubble = (page, text) => page.locator("#messages > li", { hasText: text });
const convButton = (page, name) => page.locator("#conversations button.conv", { hasText: name });

test("two people chat in the browser", async ({ browser }) => {
  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();

  await a.goto("/");
  await expect(a.getByLabel("Phone number", { exact: true })).toBeVisible();
  await expectAccessible(a, "login page");

  const mobileA = randomMobile();
  const mobileB = randomMobile();
  const sa = await login(a, mobileA);
  const sb = await login(b, mobileB);
  await expect(a.locator("#inbox-empty")).toBeVisible();

  // Display name editing (B), then A finds B by phone number.
  await b.getByRole("button", { name: /Your profile/ }).click();
  await b.getByLabel("Display name").fill("Bea");
  await b.getByRole("button", { name: "Save name" }).click();
  await expect(b.locator("#name-msg")).toHaveText("Saved.");
  await expect(b.locator("#me-name")).toHaveText(/^Bea/);
  await b.getByRole("button", { name: /Your profile/ }).click();

  await a.getByLabel("Start a chat by phone number").fill("+14155550000");
  await a.getByRole("button", { name: "Start", exact: true }).click();
  await expect(a.locator("#start-error")).toHaveText("No account uses that number.");
  await a.getByLabel("Start a chat by phone number").fill(mobileB);
  await a.getByRole("button", { name: "Start", exact: true }).click();
  await expect(a.locator("#chat-title")).toHaveText(/^Bea/);

  // A writes twice; B (online, conversation closed) sees the badge count up.
  const composerA = a.getByLabel("Message", { exact: true });
  await composerA.fill("Hello Bea");
  await composerA.press("Enter");
  await expect(bubble(a, "Hello Bea").locator(".tick")).toHaveAttribute("data-status", "delivered");
  await composerA.fill("Are you there?");
  await a.getByRole("button", { name: "Send", exact: true }).click();
  const nameA = sa.display_name;
  await expect(convButton(b, nameA).locator(".badge")).toHaveText("2");
  await expect(convButton(b, nameA).locator(".conv-last")).toHaveText("Are you there?");
  await expect(bubble(a, "Are you there?").locator(".tick")).toHaveAttribute("data-status", "delivered");

  // B's second device (another browser) shows the same badge.
  const ctxB2 = await browser.newContext();
  const b2 = await ctxB2.newPage();
  await login(b2, mobileB);
  await expect(convButton(b2, nameA).locator(".badge")).toHaveText("2");

  // B opens the conversation: one `read {up_to}` clears the badge and turns A's ticks read;
  // the other device's badge clears too (the `unread` event).
  await convButton(b, nameA).click();
  await expect(bubble(b, "Hello Bea")).toBeVisible();
  await expect(convButton(b, nameA).locator(".badge")).toHaveCount(0);
  await expect(convButton(b2, nameA).locator(".badge")).toHaveCount(0);
  await ctxB2.close();
  await expect(bubble(a, "Hello Bea").locator(".tick")).toHaveAttribute("data-status", "read");
  await expect(bubble(a, "Are you there?").locator(".tick")).toHaveAttribute("data-status", "read");

  // Typing, both ways.
  const composerB = b.getByLabel("Message", { exact: true });
  await composerB.pressSequentially("Hi A", { delay: 20 });
  await expect(a.locator("#typing")).toHaveText(/is typing/);
  await composerB.press("Enter");
  await expect(bubble(a, "Hi A")).toBeVisible();
  await expect(a.locator("#typing")).toHaveText("");
  // A has the conversation open: B's message is read at once.
  await expect(bubble(b, "Hi A").locator(".tick")).toHaveAttribute("data-status", "read");
  await composerA.pressSequentially("typing back", { delay: 20 });
  await expect(b.locator("#typing")).toHaveText(/is typing/);
  await composerA.press("Enter");
  await expect(bubble(b, "typing back")).toBeVisible();

  await expectAccessible(a, "chat view");

  if (process.env.CHAT_SCREENSHOT) {
    await composerA.fill("");
    await a.screenshot({ path: process.env.CHAT_SCREENSHOT });
  }

  // History paging: 40 more messages from A (a stock socket.io-client in this process, on a
  // session of its own: the page's access token is short-lived and the page renews it), then
  // B reopens the conversation and scrolls up to the first one.
  const other = await apiLogin(mobileA);
  expect(other.user_id).toBe(sa.user_id);
  const sock = io(BASE, { transports: ["websocket"], auth: { token: other.token } });
  for (let i = 0; i < 40; i++) {
    const ack = await sock.timeout(5000).emitWithAck("send_message", { to: sb.user_id, text: `seed ${i}`, client_id: `seed-${i}` });
    expect(ack.message_id).toBeTruthy();
  }
  sock.disconnect();
  await expect(bubble(b, "seed 39")).toBeVisible();
  await b.reload();
  await expect(b.locator("#conn")).toHaveText("Online");
  await convButton(b, nameA).click();
  await expect(bubble(b, "seed 39")).toBeVisible();
  await expect(bubbles(b)).toHaveCount(30);
  await expect(bubble(b, "Hello Bea")).toHaveCount(0);
  await expect(async () => {
    await b.locator("#scroller").evaluate((s) => {
      s.scrollTop = 0;
      s.dispatchEvent(new Event("scroll"));
    });
    await expect(bubble(b, "Hello Bea")).toHaveCount(1, { timeout: 500 });
  }).toPass();
  await expect(bubbles(b)).toHaveCount(44);
  await expect(b.getByRole("button", { name: "Load older messages" })).toBeHidden();

  // B's first access token has expired by now (the Rust test sets ACCESS_TOKEN_TTL_SECS=4),
  // so the reconnect below needs the client to refresh its session first.
  await expect
    .poll(async () => (await b.request.get("/users/me", { headers: { authorization: `Bearer ${sb.token}` } })).status(), {
      timeout: 15000,
    })
    .toBe(401);

  // The server drops B's socket: B shows reconnecting, comes back online, and nothing is
  // duplicated; a message sent meanwhile arrives once.
  expect(CONTROL, "CHAT_CONTROL_URL").toBeTruthy();
  const dropped = await (await fetch(`${CONTROL}/drop/${sb.user_id}`, { method: "POST" })).text();
  expect(Number(dropped)).toBeGreaterThan(0);
  await expect(b.locator("#conn")).toHaveAttribute("data-state", /reconnecting|connecting/);
  await composerA.fill("while you were away");
  await composerA.press("Enter");
  await expect(b.locator("#conn")).toHaveText("Online");
  await expect(bubble(b, "while you were away")).toHaveCount(1);
  await expect(bubbles(b)).toHaveCount(45);
  await composerB.fill("back again");
  await composerB.press("Enter");
  await expect(bubble(a, "back again")).toHaveCount(1);
  await expect(bubble(b, "back again")).toHaveCount(1);
  await expect(bubble(b, "back again").locator(".tick")).toHaveAttribute("data-status", "read");
  // B is still in the same login session, on a renewed access token.
  const renewed = await b.evaluate(() => JSON.parse(localStorage.getItem("chat.session")));
  expect(renewed.token).not.toBe(sb.token);
  expect(renewed.refresh_token).not.toBe(sb.refresh_token);
  expect(renewed.user_id).toBe(sb.user_id);

  // Logout: back to the login form, and a reload stays logged out.
  await b.getByRole("button", { name: "Log out" }).click();
  await expect(b.getByLabel("Phone number", { exact: true })).toBeVisible();
  await b.reload();
  await expect(b.getByLabel("Phone number", { exact: true })).toBeVisible();
  expect(await b.evaluate(() => localStorage.getItem("chat.session"))).toBeNull();

  await ctxA.close();
  await ctxB.close();
});

test("phone layout: the list, then one conversation, and back, by keyboard", async ({ browser }) => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 780 }, isMobile: true, hasTouch: true });
  const other = await browser.newContext();
  const p = await ctx.newPage();
  const o = await other.newPage();
  const mobileO = randomMobile();
  await login(o, mobileO);
  await login(p, randomMobile());
  await p.getByLabel("Start a chat by phone number").fill(mobileO);
  await p.getByLabel("Start a chat by phone number").press("Enter");
  await expect(p.locator("#chat-title")).toBeVisible();
  await expect(p.getByLabel("Start a chat by phone number")).toBeHidden();
  await p.getByLabel("Message", { exact: true }).fill("from a phone");
  await p.keyboard.press("Enter");
  await expect(bubble(p, "from a phone").locator(".tick")).toHaveAttribute("data-status", /sent|delivered/);
  await p.getByRole("button", { name: "Back to conversations" }).focus();
  await p.keyboard.press("Enter");
  await expect(p.getByLabel("Start a chat by phone number")).toBeVisible();
  await expect(p.locator("#conversations button.conv")).toHaveCount(1);
  await expect(p.locator("#conversations button.conv")).toBeFocused();
  await expectAccessible(p, "phone inbox");
  await ctx.close();
  await other.close();
});
