// The browser app's reactions, replies, attachments and unread counts, in
// Debian's chromium against the real standalone binary: alice on a
// desktop-sized window, bob on a phone-sized one. The tests run in order
// and share the two pages; the last one takes the README's picture
// (docs/app.png is a copy of $ARTIFACTS_DIR/app.png).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { deflateSync, crc32 } from "node:zlib";
import { readFileSync } from "node:fs";
import { Server } from "./lib/server.mjs";
import { launch, Pages, artifacts } from "./lib/browser.mjs";

const maxFileBytes = 64 * 1024; // uploads past it get 413
process.env.SWITCHBOARD_MAX_FILE_BYTES = String(maxFileBytes); // the flag -max-file-bytes, inherited by the server
const server = new Server();
let browser, pages, alice, bob;

before(async () => {
  await server.start();
  browser = await launch();
  pages = new Pages(browser);
  alice = await pages.signIn(server.url, "alice", { width: 1100, height: 760 });
  bob = await pages.signIn(server.url, "bob", { width: 390, height: 760 });
});

after(async () => {
  if (browser) await browser.close();
  await server.close();
});

// png returns a valid w x h RGB PNG: a diagonal gradient.
function png(w, h) {
  const chunk = (type, data) => {
    const td = Buffer.concat([Buffer.from(type), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(crc32(td), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    rows.push(0); // no filter
    for (let x = 0; x < w; x++) rows.push((x * 255) / w, (y * 255) / h, 160);
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.from(rows))), chunk("IEND", Buffer.alloc(0))]);
}

const run = (name, fn) => test(name, () => fn().catch((e) => pages.failed(e)));

// send types text into the composer of page and sends it with Enter.
async function send(page, text) {
  await page.locator("#composer-input").fill(text);
  await page.locator("#composer-input").press("Enter");
  await page.locator("#messages li[data-seq] .body", { hasText: text }).last().waitFor();
}

const message = (page, text) => page.locator("#messages li[data-seq]", { has: page.locator(".body", { hasText: text }) });

// chip returns the reaction button of emoji on the message with text.
const chip = (page, text, emoji) => message(page, text).locator(`.reaction[data-emoji="${emoji}"]`);

// react picks emoji from the quick set of the message with text.
async function react(page, text, emoji) {
  const m = message(page, text);
  await m.hover();
  await m.getByLabel("Add a reaction").click();
  await m.getByRole("button", { name: `React with ${emoji}` }).click();
}

// state returns what a reaction button shows: count, own state, who.
const state = (loc) => loc.evaluate((b) => ({ count: Number(b.querySelector(".count").textContent), me: b.getAttribute("aria-pressed") === "true", title: b.title }));

async function waitState(loc, want) {
  await loc.waitFor();
  const deadline = Date.now() + 10000;
  let got;
  while (Date.now() < deadline) {
    got = await state(loc).catch(() => null);
    if (got && got.count === want.count && got.me === want.me) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`reaction: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}

run("alice and bob react to a message, each sees the other's with counts and who, and removes it", async () => {
  await alice.getByLabel("Title").fill("Release notes");
  await alice.getByLabel("People (user ids, comma-separated)").fill("bob");
  await alice.getByLabel("People (user ids, comma-separated)").press("Enter");
  await alice.locator("#conv-title", { hasText: "Release notes" }).waitFor();
  await send(alice, "Draft is up for review");
  await bob.locator("#conversations button", { hasText: "Release notes" }).click();
  await message(bob, "Draft is up for review").waitFor();

  await react(bob, "Draft is up for review", "👍");
  let a = await waitState(chip(alice, "Draft is up for review", "👍"), { count: 1, me: false });
  assert.match(a.title, /^bob reacted with 👍$/);
  await waitState(chip(bob, "Draft is up for review", "👍"), { count: 1, me: true });

  // alice adds hers: two on both sides, each with their own state.
  await chip(alice, "Draft is up for review", "👍").click();
  a = await waitState(chip(alice, "Draft is up for review", "👍"), { count: 2, me: true });
  assert.match(a.title, /bob/);
  assert.match(a.title, /you/);
  const b = await waitState(chip(bob, "Draft is up for review", "👍"), { count: 2, me: true });
  assert.match(b.title, /alice/);
  await react(alice, "Draft is up for review", "🎉");
  await waitState(chip(bob, "Draft is up for review", "🎉"), { count: 1, me: false });

  // bob takes his back (from the keyboard): alice sees one left, not hers gone.
  await chip(bob, "Draft is up for review", "👍").focus();
  await bob.keyboard.press("Enter");
  await waitState(chip(bob, "Draft is up for review", "👍"), { count: 1, me: false });
  await waitState(chip(alice, "Draft is up for review", "👍"), { count: 1, me: true });

  // A fresh page of alice's shows the same, from message:reactions.
  await alice.reload();
  await alice.locator("#status", { hasText: "Connected" }).waitFor();
  await alice.locator("#conversations button", { hasText: "Release notes" }).click();
  await waitState(chip(alice, "Draft is up for review", "👍"), { count: 1, me: true });
  await waitState(chip(alice, "Draft is up for review", "🎉"), { count: 1, me: true });
  assert.deepEqual(pages.problems, []);
});

run("bob replies to alice's message and alice sees the quote, which leads to it", async () => {
  await send(alice, "Can someone check the changelog?");
  const target = message(bob, "Can someone check the changelog?");
  await target.hover();
  await target.getByRole("button", { name: "Reply to this message" }).click();
  await bob.locator("#reply-bar", { hasText: "Replying to alice: Can someone check the changelog?" }).waitFor();
  await bob.locator("#composer-input").fill("On it, checking now");
  await bob.locator("#composer-input").press("Enter");
  await bob.locator("#reply-bar").waitFor({ state: "hidden" });

  const reply = message(alice, "On it, checking now");
  const quote = reply.locator(".quote");
  await quote.waitFor();
  assert.equal((await quote.textContent()).trim(), "↪ you: Can someone check the changelog?");
  // (Once bob's receipt is in: it renders alice's message again.)
  await message(alice, "Can someone check the changelog?").locator(".receipt", { hasText: "Read by bob" }).waitFor();
  await quote.click();
  await alice.waitForFunction(() => {
    const a = document.activeElement;
    return a && a.matches("#messages li.flash") && a.querySelector(".body").textContent === "Can someone check the changelog?";
  });
  assert.equal((await message(bob, "On it, checking now").locator(".quote").textContent()).trim(), "↪ alice: Can someone check the changelog?");
  assert.deepEqual(pages.problems, []);
});

// badge returns the unread count shown for the conversation named title.
const badge = (page, title) => page.locator("#conversations li", { hasText: title }).locator(".badge");

run("bob, in the list, sees the unread count rise with alice's messages, and drop when he opens it", async () => {
  await bob.getByRole("button", { name: "Back to conversations" }).click();
  await bob.locator("#conversations").waitFor();
  await alice.getByLabel("Title").fill("Standup");
  await alice.getByLabel("People (user ids, comma-separated)").fill("bob");
  await alice.getByLabel("People (user ids, comma-separated)").press("Enter");
  await alice.locator("#conv-title", { hasText: "Standup" }).waitFor();
  await bob.locator("#conversations li", { hasText: "Standup" }).waitFor();

  await send(alice, "Morning!");
  await badge(bob, "Standup").and(bob.locator('[data-unread="1"]')).waitFor();
  for (const text of ["Blocked on the review", "Anyone around?", "Ping"]) await send(alice, text);
  await badge(bob, "Standup").and(bob.locator('[data-unread="4"]')).waitFor();
  await bob.locator("#conversations li", { hasText: "Standup" }).locator(".preview", { hasText: "alice: Ping" }).waitFor();
  assert.equal(await badge(bob, "Standup").textContent(), "4");

  await bob.locator("#conversations button", { hasText: "Standup" }).click();
  await message(bob, "Ping").waitFor();
  await bob.getByRole("button", { name: "Back to conversations" }).click();
  await badge(bob, "Standup").waitFor({ state: "detached" });
  // The server has the read marker (alice sees it): a fresh page lists it read.
  await message(alice, "Ping").locator(".receipt", { hasText: "Read by bob" }).waitFor();
  await bob.reload();
  await bob.locator("#status", { hasText: "Connected" }).waitFor();
  await bob.locator("#conversations li", { hasText: "Standup" }).waitFor();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await badge(bob, "Standup").count(), 0);
  assert.deepEqual(pages.problems, []);
});

const picture = png(20, 14);
const notes = "Changelog\n- reactions\n- replies\n- files\n";

run("alice attaches an image and a text file, bob sees the image inline and downloads the text", async () => {
  assert.ok(picture.length > 100 && picture.length < 1000, `the PNG has ${picture.length} bytes`);
  await alice.locator("#conversations button", { hasText: "Release notes" }).click();
  await bob.locator("#conversations button", { hasText: "Release notes" }).click();
  await message(bob, "On it, checking now").waitFor();
  await alice.locator("#attach-input").setInputFiles([
    { name: "screenshot.png", mimeType: "image/png", buffer: picture },
    { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from(notes) },
  ]);
  await alice.locator("#chosen li", { hasText: "notes.txt" }).waitFor();
  await alice.locator("#composer-input").fill("Here are the files");
  await alice.locator("#composer-input").press("Enter");
  await alice.locator("#chosen").waitFor({ state: "hidden" });

  const m = message(bob, "Here are the files");
  const img = m.locator('.attachments img[alt="screenshot.png"]');
  await img.waitFor();
  await bob.waitForFunction((i) => i.complete && i.naturalWidth > 0, await img.elementHandle());
  assert.deepEqual(await img.evaluate((i) => [i.naturalWidth, i.naturalHeight]), [20, 14]);
  assert.match(await img.getAttribute("src"), /^blob:/, "no token in the image's URL");
  const link = m.locator(".attachments a.file", { hasText: "notes.txt" });
  await link.waitFor();
  const [download] = await Promise.all([bob.waitForEvent("download"), link.click()]);
  assert.equal(download.suggestedFilename(), "notes.txt");
  assert.equal(readFileSync(await download.path(), "utf8"), notes);

  // An image alone, with no text.
  await alice.locator("#attach-input").setInputFiles([{ name: "only.png", mimeType: "image/png", buffer: png(8, 8) }]);
  await alice.getByRole("button", { name: "Send" }).click();
  const lone = bob.locator('#messages li[data-seq] .attachments img[alt="only.png"]');
  await lone.waitFor();
  await bob.waitForFunction((i) => i.complete && i.naturalWidth === 8, await lone.elementHandle());

  // Too large a file: the server's 413 is said, the text and the file stay
  // in the composer, and nothing is sent.
  pages.allowed.push(/status of 413/); // chromium logs the refused request
  await alice.locator("#attach-input").setInputFiles([{ name: "huge.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(maxFileBytes + 1) }]);
  await alice.locator("#composer-input").fill("This one is too big");
  await alice.locator("#composer-input").press("Enter");
  await alice.locator("#alert", { hasText: "huge.bin is too large" }).waitFor();
  await alice.locator("#chosen li", { hasText: "huge.bin" }).waitFor();
  assert.equal(await alice.locator("#composer-input").inputValue(), "This one is too big");
  await alice.getByRole("button", { name: "Remove huge.bin" }).click();
  await alice.locator("#composer-input").fill("");
  await alice.getByRole("button", { name: "Dismiss" }).click();
  pages.allowed.pop();
  assert.equal(await message(bob, "This one is too big").count(), 0);
  assert.deepEqual(pages.problems, []);
});

run("the README's picture: reactions, a reply, an image and an unread count", async () => {
  // alice, in Release notes, gets a message in Standup: its count shows.
  await react(bob, "Here are the files", "💙");
  await chip(alice, "Here are the files", "💙").waitFor();
  await bob.getByRole("button", { name: "Back to conversations" }).click();
  await bob.locator("#conversations button", { hasText: "Standup" }).click();
  await send(bob, "Back from lunch, reviewing now");
  await badge(alice, "Standup").and(alice.locator('[data-unread="1"]')).waitFor();
  await alice.mouse.move(0, 0);
  await alice.locator("#scroller").evaluate((e) => { e.scrollTop = e.scrollHeight; });
  await alice.screenshot({ path: path.join(artifacts, "app.png") });
  await bob.screenshot({ path: path.join(artifacts, "app-features-bob-phone.png") });
  assert.deepEqual(pages.problems, []);
});
