// Debian's chromium driven by playwright-core (which never downloads a
// browser), and the app's pages in it: each user in a fresh context, every
// page error and console error collected (the app must have none).
import path from "node:path";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { mint } from "./server.mjs";

export const artifacts = process.env.ARTIFACTS_DIR || path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "artifacts");
mkdirSync(artifacts, { recursive: true });

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// Pages holds the pages of one test file and what went wrong in them.
export class Pages {
  constructor(browser) {
    this.browser = browser;
    this.pages = new Map(); // user -> page, for screenshots of a failure
    this.problems = []; // page errors and console errors
    this.allowed = []; // console errors a test expects (regexps), besides a cut connection's
  }

  // failed takes a screenshot of every page, then rethrows.
  async failed(err) {
    for (const [user, page] of this.pages) await page.screenshot({ path: path.join(artifacts, `failure-${user}.png`) }).catch(() => {});
    if (this.problems.length) err.message += "\nin the pages:\n" + this.problems.join("\n");
    throw err;
  }

  // watch collects the errors of page as user's.
  watch(user, page) {
    this.pages.set(user, page);
    page.on("pageerror", (e) => this.problems.push(`${user}: page error: ${e.message}`));
    page.on("console", (m) => {
      // A cut connection is logged by chromium itself; anything else is the app's.
      if (m.type() !== "error" || /WebSocket connection to .* failed|ERR_CONNECTION/.test(m.text())) return;
      if (this.allowed.some((re) => re.test(m.text()))) return;
      this.problems.push(`${user}: console: ${m.text()}`);
    });
  }

  // signIn opens the app at base in a fresh context and connects with a token.
  async signIn(base, user, viewport) {
    const context = await this.browser.newContext({ viewport });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    this.watch(user, page);
    await page.goto(base + "/");
    await page.getByLabel("Your access token (a JWT)").fill(mint("demo", user));
    await page.getByRole("button", { name: "Connect" }).click();
    await page.locator("#status", { hasText: "Connected" }).waitFor();
    return page;
  }
}
