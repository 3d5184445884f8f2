// The browser app in Debian's chromium (driven by playwright-core, which
// never downloads a browser): two users in two fresh browser contexts, one
// on a desktop-sized window and one on a phone-sized one. Screenshots go
// to $ARTIFACTS_DIR (default tests/node/artifacts).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { Server, mint } from "./lib/server.mjs";
import { CuttableProxy } from "./lib/proxy.mjs";
import { launch, Pages, artifacts } from "./lib/browser.mjs";

const server = new Server();
let proxy, browser, pages;

before(async () => {
  await server.start();
  proxy = new CuttableProxy(server.addr);
  await proxy.start();
  browser = await launch();
  pages = new Pages(browser);
});

after(async () => {
  if (browser) await browser.close();
  if (proxy) await proxy.close();
  await server.close();
});

const failed = (err) => pages.failed(err);
const signIn = (base, user, viewport) => pages.signIn(base, user, viewport);

// messages returns the seq and text of every message shown, in order.
const messages = (page) => page.$$eval("#messages li[data-seq]", (lis) => lis.map((li) => ({
  seq: Number(li.dataset.seq), text: li.querySelector(".body").textContent,
})));

test("two users chat, see typing, presence and receipts; a cut connection loses and doubles nothing", () => chat().catch(failed));

async function chat() {
  // alice's page goes through the proxy, so that its socket can be cut.
  const alice = await signIn(proxy.url, "alice", { width: 1100, height: 720 });
  const bob = await signIn(server.url, "bob", { width: 390, height: 760 });

  // alice creates a conversation with bob, from the keyboard.
  await alice.getByLabel("Title").fill("Launch plan");
  await alice.getByLabel("People (user ids, comma-separated)").fill("bob");
  await alice.getByLabel("People (user ids, comma-separated)").press("Enter");
  await alice.locator("#conv-title", { hasText: "Launch plan" }).waitFor();

  // bob learns of it without reloading: it shows as new in his list.
  const bobEntry = bob.locator("#conversations li.unread button", { hasText: "Launch plan" });
  await bobEntry.waitFor();
  await bobEntry.click();
  await bob.locator("#conv-title", { hasText: "Launch plan" }).waitFor();

  // Typing is shown to the other side, then the message.
  await alice.locator("#composer-input").pressSequentially("Hi bob, ready", { delay: 20 });
  await bob.locator("#typing", { hasText: "alice is typing" }).waitFor();
  await alice.locator("#composer-input").press("Enter");
  await bob.locator("#messages .body", { hasText: "Hi bob, ready" }).waitFor();
  await bob.locator("#typing:empty").waitFor();

  await bob.locator("#composer-input").pressSequentially("Yes! Shipping today", { delay: 20 });
  await alice.locator("#typing", { hasText: "bob is typing" }).waitFor();
  await bob.locator("#composer-input").press("Enter");
  await alice.locator("#messages .body", { hasText: "Shipping today" }).waitFor();

  // Presence: each sees the other online.
  await alice.locator("summary", { hasText: "People" }).click();
  await alice.locator('[data-presence="bob"]', { hasText: "online" }).waitFor();
  await bob.locator("summary", { hasText: "People" }).click();
  await bob.locator('[data-presence="alice"]', { hasText: "online" }).waitFor();

  // Receipts: bob has the conversation open, so alice's message is read.
  await alice.locator("#messages li.mine .receipt", { hasText: "Read by bob" }).first().waitFor();

  // alice edits her message; bob sees the edit.
  await alice.locator("#messages li.mine").first().getByRole("button", { name: "Edit message" }).click();
  const editor = alice.getByLabel("Edit message", { exact: true }).and(alice.locator("textarea"));
  await editor.fill("Hi bob, ready to launch?");
  await editor.press("Enter");
  await bob.locator("#messages .body", { hasText: "ready to launch?" }).waitFor();

  await alice.screenshot({ path: path.join(artifacts, "app-alice.png") });
  await bob.screenshot({ path: path.join(artifacts, "app-bob-phone.png") });

  // alice's socket is cut; the page says so while it reconnects.
  proxy.cut();
  await alice.locator("#status.down", { hasText: "reconnecting" }).waitFor();
  await alice.screenshot({ path: path.join(artifacts, "app-alice-reconnecting.png") });
  const away = ["While you were away: 1", "While you were away: 2", "While you were away: 3"];
  for (const text of away) {
    await bob.locator("#composer-input").fill(text);
    await bob.locator("#composer-input").press("Enter");
    await bob.locator("#messages li[data-seq] .body", { hasText: text }).waitFor();
  }
  proxy.restore();
  await alice.locator("#status", { hasText: "Connected" }).waitFor({ timeout: 15000 });
  await alice.locator("#messages .body", { hasText: away[2] }).waitFor();

  // One more live message after the rejoin.
  await bob.locator("#composer-input").fill("Welcome back");
  await bob.locator("#composer-input").press("Enter");
  await alice.locator("#messages .body", { hasText: "Welcome back" }).waitFor();

  const shown = await messages(alice);
  assert.deepEqual(shown.map((m) => m.text), ["Hi bob, ready to launch?", "Yes! Shipping today", ...away, "Welcome back"],
    "every message once, in order");
  const seqs = shown.map((m) => m.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length);
  assert.deepEqual(shown, await messages(bob), "both sides show the same conversation");
  await alice.screenshot({ path: path.join(artifacts, "app-alice-after-reconnect.png") });

  // bob deletes his last message; alice sees it deleted.
  const last = bob.locator("#messages li.mine").last();
  await last.getByRole("button", { name: "Delete message" }).click();
  await last.getByRole("button", { name: "Delete message" }).click(); // confirm
  await alice.locator("#messages li.deleted .body", { hasText: "Message deleted" }).waitFor();

  // Server errors are shown: adding an invalid user id.
  await alice.getByLabel("Add people").fill("not a valid id!");
  await alice.getByLabel("Add people").press("Enter");
  await alice.locator("#alert", { hasText: "must match" }).waitFor();
  await alice.getByRole("button", { name: "Dismiss" }).click();

  // A picture of the chat (the README's, docs/app.png, is browser-features' app.png).
  await alice.locator("summary", { hasText: "People" }).click();
  await bob.locator("#composer-input").pressSequentially("Great, see you", { delay: 20 });
  await alice.locator("#typing", { hasText: "bob is typing" }).waitFor();
  await alice.screenshot({ path: path.join(artifacts, "app-chat.png") });

  assert.deepEqual(pages.problems, []);
}

test("history scrolls back past the first page", () => history().catch(failed));

async function history() {
  const carol = await signIn(server.url, "carol", { width: 900, height: 600 });
  // 60 messages, sent over the protocol by a second tab of carol's.
  const page = await (await browser.newContext()).newPage();
  await page.goto(server.url + "/app/app.css"); // same origin, no app
  const conv = await page.evaluate(async ({ url, token }) => {
    const ws = new WebSocket(url + "?access_token=" + token);
    const replies = new Map();
    ws.onmessage = (m) => { const f = JSON.parse(m.data); if (f.id) replies.get(f.id)?.(f); };
    await new Promise((r) => { ws.onopen = r; });
    let n = 0;
    const req = (type, data) => new Promise((resolve) => { const id = "x" + ++n; replies.set(id, resolve); ws.send(JSON.stringify({ id, type, data })); });
    const { data: { conversationId } } = await req("conversation:create", { participants: [], title: "Long history" });
    let first;
    for (let i = 1; i <= 60; i++) {
      const ack = await req("message:send", { conversationId, content: `note ${i}`, clientMsgId: `n-${i}` });
      first = first || ack.data.messageId;
    }
    await req("message:send", { conversationId, content: "about the first note", clientMsgId: "n-reply", replyTo: first });
    ws.close();
    return conversationId;
  }, { url: server.url.replace("http", "ws") + "/ws", token: mint("demo", "carol") });
  assert.ok(conv);
  await carol.reload();
  await carol.locator("#status", { hasText: "Connected" }).waitFor();
  await carol.locator("#conversations button", { hasText: "Long history" }).click();
  await carol.locator("#messages .body", { hasText: "about the first note" }).waitFor();
  assert.equal((await messages(carol)).length, 50);
  // A reply to a message not loaded says so; once it is, it quotes it.
  const quote = carol.locator("#messages li", { hasText: "about the first note" }).locator(".quote");
  assert.equal((await quote.textContent()).trim(), "In reply to ↪ a message");
  await carol.getByRole("button", { name: "Load older messages" }).waitFor();
  await carol.locator("#scroller").evaluate((e) => { e.scrollTop = 0; }); // scrolling back loads the older page
  await carol.locator("#messages .body", { hasText: /^note 1$/ }).waitFor();
  const all = await messages(carol);
  assert.deepEqual(all.map((m) => m.text), [...Array.from({ length: 60 }, (_, i) => `note ${i + 1}`), "about the first note"]);
  await carol.locator("#messages button.quote", { hasText: "you: note 1" }).waitFor();
  assert.deepEqual(pages.problems, []);
}
