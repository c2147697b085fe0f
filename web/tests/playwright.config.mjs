// Playwright settings for the web client's browser tests. The browser is the system's
// Chromium (Playwright's own download is not used: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1), and
// the stack under test is started by the Rust e2e test `web::web_client_in_chromium`, which
// passes its URL in CHAT_HTTP_URL.
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: ".",
  testMatch: /.*\.spec\.mjs$/,
  outputDir: "../test-results",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 10_000 },
  reporter: [["list"]],
  use: {
    baseURL: process.env.CHAT_HTTP_URL || "http://127.0.0.1:8000",
    viewport: { width: 960, height: 640 },
    trace: "off",
    launchOptions: {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
});
