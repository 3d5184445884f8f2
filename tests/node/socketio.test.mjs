// The real socket.io-client (4.8.x, websocket transport) against a real
// Switchboard: docs/protocol.md section 6 as a Socket.IO front end sees it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { Server, mint } from "./lib/server.mjs";

// message:edit is kept at its low default-like limit for the rate-limit test.
const server = new Server({ limits: "message:send=1000/1s,message:typing=1000/1s,default=1000/1s,message:edit=2/1m" });
const sockets = [];

before(async () => { await server.start(); });
after(async () => {
  for (const s of sockets) s.disconnect();
  await server.close();
});

// connect opens a socket as user of org and resolves with it and its session.
function open(user, { org = "acme", token = mint(org, user), ...opts } = {}) {
  const socket = io(server.url, {
    transports: ["websocket"], auth: { token }, reconnectionDelay: 100, reconnectionDelayMax: 500, ...opts,
  });
  sockets.push(socket);
  return socket;
}

async function connect(user, opts) {
  const socket = open(user, opts);
  const session = await once(socket, "session");
  return { socket, session };
}

// once resolves with the next event's argument, or fails after ms.
function once(socket, event, ms = 5000, pred = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.off(event, on); reject(new Error(`no ${event} within ${ms} ms`)); }, ms);
    function on(arg) {
      if (!pred(arg)) return;
      clearTimeout(timer);
      socket.off(event, on);
      resolve(arg);
    }
    socket.on(event, on);
  });
}

// ok emits with an ack and fails unless the ack is a success.
async function ok(socket, type, data) {
  const reply = await socket.timeout(5000).emitWithAck(type, data);
  assert.equal(reply.error, undefined, `${type}: ${JSON.stringify(reply)}`);
  return reply;
}

const nextId = (() => { let n = 0; return (p = "m") => `${p}-${process.pid}-${++n}`; })();

async function conversationOf(a, b) {
  const { conversationId } = await ok(a.socket, "conversation:create", { participants: [b.session.userId], title: "node" });
  await ok(a.socket, "conversation:join", { conversationId });
  await ok(b.socket, "conversation:join", { conversationId });
  return conversationId;
}

test("connects: the session event follows the connect, socket.id is the connection id", async () => {
  const { socket, session } = await connect("alice");
  assert.equal(socket.connected, true);
  assert.equal(session.userId, "alice");
  assert.equal(session.orgId, "acme");
  assert.equal(session.connectionId, socket.id);
  assert.ok(session.limits["message:send"].capacity > 0);
  assert.ok(Date.parse(session.expiresAt) > Date.now());
});

test("a bad token is refused with connect_error and no retry", async () => {
  for (const token of ["nonsense", mint("acme", "alice", 3600, "another-secret-0123456789abcdef"), mint("acme", "alice", -60)]) {
    const socket = open("alice", { token });
    const err = await once(socket, "connect_error");
    assert.equal(err.message, "unauthorized");
    assert.deepEqual(err.data, { code: "unauthenticated" });
    await new Promise((r) => setTimeout(r, 700)); // longer than the reconnection delay
    assert.equal(socket.connected, false);
    assert.equal(socket.active, false, "the client must not retry a refused token");
  }
});

test("emit with ack; another user's messages; typing and receipts as events", async () => {
  const alice = await connect("alice"), bob = await connect("bob");
  const conv = await conversationOf(alice, bob);

  const incoming = once(bob.socket, "message:new", 5000, (m) => m.senderId === "alice");
  const ack = await ok(alice.socket, "message:send", { conversationId: conv, content: "hello bob", clientMsgId: nextId() });
  assert.equal(typeof ack.messageId, "string");
  assert.ok(ack.seq > 0);
  assert.equal(ack.duplicate, false);
  const m = await incoming;
  assert.equal(m.seq, ack.seq);
  assert.equal(m.content, "hello bob");
  assert.equal(m.conversationId, conv);

  const typing = once(alice.socket, "typing", 5000, (t) => t.userId === "bob");
  await ok(bob.socket, "message:typing", { conversationId: conv, isTyping: true });
  assert.deepEqual(await typing, { conversationId: conv, userId: "bob", isTyping: true });

  const receipt = once(alice.socket, "receipt", 5000, (r) => r.userId === "bob" && r.read === ack.seq);
  await ok(bob.socket, "message:read", { conversationId: conv, seq: ack.seq });
  const r = await receipt;
  assert.equal(r.delivered, ack.seq);

  // Events inside acks are the JSON protocol's event objects.
  const hist = await ok(alice.socket, "conversation:history", { conversationId: conv });
  assert.ok(hist.events.some((e) => e.type === "message:new" && e.data.seq === ack.seq));
});

test("validation and rate-limit errors as ack replies and as events", async () => {
  const alice = await connect("alice"), bob = await connect("bob");
  const conv = await conversationOf(alice, bob);

  const bad = await alice.socket.emitWithAck("message:send", { conversationId: conv });
  assert.equal(bad.error.type, "validation-error");
  assert.equal(bad.error.code, "validation_failed");
  assert.deepEqual(bad.error.fields.map((f) => f.field).sort(), ["clientMsgId", "content"]);

  const event = once(alice.socket, "validation-error");
  alice.socket.emit("message:send", { conversationId: "not an id", content: "x", clientMsgId: "x" });
  const v = await event;
  assert.equal(v.code, "validation_failed");
  assert.ok(v.fields.some((f) => f.field === "conversationId"));

  const unknown = await alice.socket.emitWithAck("message:shout", {});
  assert.equal(unknown.error.type, "validation-error");

  const { messageId } = await ok(alice.socket, "message:send", { conversationId: conv, content: "v1", clientMsgId: nextId() });
  await ok(alice.socket, "message:edit", { conversationId: conv, messageId, content: "v2" });
  await ok(alice.socket, "message:edit", { conversationId: conv, messageId, content: "v3" });
  const limited = await alice.socket.emitWithAck("message:edit", { conversationId: conv, messageId, content: "v4" });
  assert.equal(limited.error.type, "rate-limit-exceeded");
  assert.equal(limited.error.code, "rate_limited");
  assert.ok(limited.error.retryAfterMs > 0);
  const rl = once(alice.socket, "rate-limit-exceeded");
  alice.socket.emit("message:edit", { conversationId: conv, messageId, content: "v5" });
  assert.equal((await rl).code, "rate_limited");

  const forbidden = await bob.socket.emitWithAck("message:delete", { conversationId: conv, messageId });
  assert.equal(forbidden.error.type, "error");
  assert.equal(forbidden.error.code, "forbidden");
});

test("a server-side close: the error event with the code, then a server disconnect", async () => {
  const alice = await connect("alice"), bob = await connect("bob");
  const { conversationId } = await ok(alice.socket, "conversation:create", { participants: [], title: "private" });
  const closing = once(bob.socket, "error", 5000, (e) => typeof e.code === "number");
  const gone = once(bob.socket, "disconnect");
  for (let i = 0; i < 5; i++) bob.socket.emit("message:typing", { conversationId, isTyping: true }); // forbidden x5
  const e = await closing;
  assert.equal(e.code, 4003);
  assert.match(e.message, /authorization failures/);
  assert.equal(await gone, "io server disconnect");
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(bob.socket.active, false, "socket.io-client does not reconnect after 41 by itself");
});

test("a reconnect after the edge restarts rejoins with sinceSeq and loses nothing", async () => {
  const alice = await connect("alice"), bob = await connect("bob"), dave = await connect("dave");
  const { conversationId: conv } = await ok(alice.socket, "conversation:create", { participants: ["bob", "dave"], title: "restart" });

  // A client as an application writes it: it joins on every connect with
  // the last seq it holds, takes missed then live events, and reconnects
  // after 1012 (restart) or 1013.
  function follow({ socket }, { auto }) {
    const state = { seqs: [], contents: [], last: 0, restarts: 0, reconnect: () => socket.connect() };
    const take = (m) => { // no dedupe here: a doubled message must show
      if (m.conversationId !== conv) return;
      state.last = Math.max(state.last, m.seq);
      state.seqs.push(m.seq);
      state.contents.push(m.content);
    };
    socket.on("message:new", take);
    socket.on("error", (e) => { if (e.code === 1012 || e.code === 1013) state.restarts++; });
    socket.on("disconnect", (reason) => { if (reason === "io server disconnect" && auto && state.restarts) state.reconnect(); });
    state.join = async () => {
      const ack = await ok(socket, "conversation:join", state.last ? { conversationId: conv, sinceSeq: state.last } : { conversationId: conv });
      state.joinedMissed = ack.missed.length;
      for (const e of ack.missed) if (e.type === "message:new") take(e.data);
      return ack;
    };
    socket.on("connect", () => { state.rejoined = state.join(); });
    return state;
  }
  const a = follow(alice, { auto: true }); // reconnects at once and retries while the edge is down
  const d = follow(dave, { auto: false }); // comes back only after bob sent more
  await a.join();
  await d.join();
  await ok(bob.socket, "conversation:join", { conversationId: conv });

  const sent = [];
  const send = async (text) => {
    const ack = await ok(bob.socket, "message:send", { conversationId: conv, content: text, clientMsgId: nextId() });
    sent.push([ack.seq, text]);
  };
  for (const t of ["one", "two", "three"]) await send(t);
  await waitFor(() => a.seqs.length === 3 && d.seqs.length === 3, "live messages before the restart");

  const aliceDown = once(alice.socket, "disconnect"), daveDown = once(dave.socket, "disconnect");
  const bobDown = once(bob.socket, "disconnect");
  await server.restart();
  assert.equal(await aliceDown, "io server disconnect");
  assert.equal(await daveDown, "io server disconnect");
  await bobDown;
  assert.ok(a.restarts >= 1 && d.restarts >= 1, "the error event said 1012 first");

  bob.socket.connect();
  await once(bob.socket, "session", 15000);
  await ok(bob.socket, "conversation:join", { conversationId: conv });
  for (const t of ["four", "five", "six"]) await send(t);

  dave.socket.connect();
  await waitFor(() => a.seqs.length === 6 && d.seqs.length === 6, "every message after the restart", 20000);
  await d.rejoined;
  assert.equal(d.joinedMissed, 3, "dave's join with sinceSeq replayed what he missed");
  await send("seven");
  await waitFor(() => a.seqs.length === 7 && d.seqs.length === 7, "a live message after the rejoin");

  const want = sent.map(([seq]) => seq);
  for (const s of [a, d]) {
    assert.deepEqual(s.seqs, want, "every message once, in order");
    assert.deepEqual(s.contents, ["one", "two", "three", "four", "five", "six", "seven"]);
  }
});

async function waitFor(cond, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
