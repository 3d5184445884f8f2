// The sync of the app: the events (live and replayed), the conversation
// list, joining and leaving, history pages and the read marker.
import { $, ServerError, showAlert, showError } from "./util.js";
import { state, conversation, isMe, visible } from "./state.js";
import { reacted, fetchReactions } from "./reactions.js";
import { applySummary, activity, newMessage, markSeen, refreshSoon } from "./inbox.js";
import { closeConversation, openConversation, renderConversation, renderList, renderPeople, renderTyping, setStatus } from "./view.js";

// ---- Events ----

export function onEvent(type, d) {
  switch (type) {
    case "message:new": case "message:edited": case "message:deleted": case "message:reacted": case "conversation:updated":
      return durable({ type, data: d }, true);
    case "conversation:activity": return activity(d);
    case "typing": return typing(d);
    case "receipt": return receipt(d);
    case "presence": return presence(d);
    case "auth:expiring": return showAlert("Your token expires soon: paste a new one after it does.");
    case "error": case "validation-error": case "rate-limit-exceeded":
      return showAlert(new ServerError(type, d).describe());
  }
}

// durable applies an event with a seq, live or replayed.
function durable(ev, live) {
  const d = ev.data;
  const c = state.convs.get(d.conversationId);
  if (!c) {
    if (ev.type === "conversation:updated" && d.participants.includes(state.me.userId)) adopt(d.conversationId, d.participants);
    return;
  }
  if (!c.joined && !c.syncing && !c.fetching && !c.loadingOlder) return outside(c, ev);
  if (live && c.joined && !c.syncing && d.prevSeq > c.lastSeq && c.lastSeq > 0) fetchAfter(c, c.lastSeq);
  c.lastSeq = Math.max(c.lastSeq, d.seq);
  c.activity = Math.max(c.activity, d.seq);
  switch (ev.type) {
    case "message:new": addMessage(c, d, live); break;
    case "message:edited": edited(c, d); break;
    case "message:deleted": deleted(c, d); break;
    case "message:reacted": if (live) reacted(c, d); break; // older ones: the snapshot of the page has them
    case "conversation:updated":
      c.participants = d.participants;
      if (!d.participants.includes(state.me.userId)) { forget(c); return; }
      break;
  }
  if (c.id === state.active) { renderConversation(); markRead(c); }
  renderList();
}

// outside takes an event of a conversation not joined here (one that came
// after a leave, or a membership change sent to the user): the seq held
// stays, so that a join again replays from it.
function outside(c, ev) {
  if (ev.type !== "conversation:updated") return;
  c.participants = ev.data.participants;
  if (!c.participants.includes(state.me.userId)) forget(c);
  else renderList();
}

function addMessage(c, d, live) {
  if (c.msgs.has(d.messageId)) return; // replayed and live: shown once
  const m = {
    messageId: d.messageId, seq: d.seq, senderId: d.senderId, content: d.content, createdAt: d.createdAt, clientMsgId: d.clientMsgId,
    replyTo: d.replyTo || null, attachments: d.attachments || [],
  };
  Object.assign(m, c.patches.get(d.messageId));
  c.patches.delete(d.messageId);
  c.msgs.set(d.messageId, m);
  if (isMe(d.senderId)) c.pending.delete(d.clientMsgId);
  newMessage(c, d, live);
  if (c.typing.has(d.senderId)) stopTyping(c, d.senderId);
}

function edited(c, d) {
  patch(c, d.messageId, { content: d.content, edited: true });
  if (c.last && c.last.messageId === d.messageId) c.last.content = d.content;
}

function deleted(c, d) {
  patch(c, d.messageId, { content: "", deleted: true, attachments: [] });
  c.reactions.delete(d.messageId);
  if (c.last && c.last.messageId === d.messageId) refreshSoon(); // the list says which is last now
}

function patch(c, messageId, fields) {
  const m = c.msgs.get(messageId);
  if (m) Object.assign(m, fields);
  else c.patches.set(messageId, { ...c.patches.get(messageId), ...fields }); // its message:new is in an older page
}

function typing(d) {
  const c = state.convs.get(d.conversationId);
  if (!c || isMe(d.userId)) return;
  if (d.isTyping) {
    clearTimeout(c.typing.get(d.userId));
    c.typing.set(d.userId, setTimeout(() => stopTyping(c, d.userId), 8000)); // the server ends it at 6 s
  } else stopTyping(c, d.userId);
  if (c.id === state.active) renderTyping();
}

export function stopTyping(c, user) {
  clearTimeout(c.typing.get(user));
  c.typing.delete(user);
  if (c.id === state.active) renderTyping();
}

function receipt(d) {
  const c = state.convs.get(d.conversationId);
  if (!c) return;
  c.receipts.set(d.userId, { delivered: d.delivered, read: d.read });
  if (isMe(d.userId)) {
    c.read = Math.max(c.read, d.read);
    if (c.read >= c.activity) markSeen(c); // read on another device
    renderList();
  }
  if (c.id === state.active) renderConversation();
}

function presence(p) {
  state.presence.set(p.userId, { status: p.status, lastSeenAt: p.lastSeenAt });
  if (state.active) renderPeople();
}

// ---- Sync: list, join, history ----

export async function onSession(session) {
  state.me = { userId: session.userId, orgId: session.orgId };
  $("me").textContent = `${session.userId} · ${session.orgId}`;
  setStatus("Connected", false);
  try {
    await sync();
  } catch (e) {
    showError(e);
  }
}

// sync lists the conversations (with their unread counts and last
// messages) and joins the one shown again, with sinceSeq, so that nothing
// sent meanwhile is lost or doubled. The others are not joined: their
// conversation:activity events keep the list current.
async function sync() {
  for (const c of state.convs.values()) { c.joined = false; c.joining = null; c.leaving = null; }
  let cursor;
  const seen = new Set();
  do {
    const page = await state.conn.request("conversation:list", cursor ? { limit: 100, cursor } : { limit: 100 });
    for (const s of page.conversations) seen.add(applySummary(s).id);
    cursor = page.cursor;
  } while (cursor);
  for (const c of [...state.convs.values()]) if (!seen.has(c.id)) forget(c);
  renderList();
  state.synced = true;
  if (state.active && state.convs.has(state.active)) openConversation(state.active, { keepFocus: true });
}

// join starts live events of c; with a seq held, sinceSeq returns what
// was missed.
export function join(c) {
  if (c.joined) return Promise.resolve();
  if (c.joining) return c.joining;
  c.joining = (async () => {
    if (c.leaving) await c.leaving; // in order: a leave still on its way would undo this join
    c.syncing = true;
    try {
      // lastSeq is set by a join and the events after it: with it, the
      // join replays what came since.
      const since = c.lastSeq > 0 ? c.lastSeq : null;
      const ack = await state.conn.request("conversation:join", since !== null ? { conversationId: c.id, sinceSeq: since } : { conversationId: c.id });
      c.title = ack.conversation.title;
      c.participants = ack.conversation.participants;
      c.createdBy = ack.conversation.createdBy;
      for (const r of ack.receipts) c.receipts.set(r.userId, { delivered: r.delivered, read: r.read });
      for (const p of ack.presence) state.presence.set(p.userId, { status: p.status, lastSeenAt: p.lastSeenAt });
      for (const u of ack.typing) if (!isMe(u)) c.typing.set(u, setTimeout(() => stopTyping(c, u), 8000));
      for (const ev of ack.missed) durable(ev, true);
      if (ack.truncated) await fetchAfter(c, c.lastSeq, true);
      c.lastSeq = Math.max(c.lastSeq, ack.lastSeq);
      c.joined = true;
    } finally {
      c.syncing = false;
      c.joining = null;
    }
    renderList();
    if (c.id === state.active) renderConversation();
  })();
  return c.joining;
}

// leave stops the live events of a conversation no longer shown; its
// messages stay held, and a join again replays what came since.
export function leave(c) {
  if (c.leaving || (!c.joined && !c.joining)) return;
  c.leaving = (async () => {
    if (c.joining) await c.joining.catch(() => {});
    if (state.active === c.id || !state.conn) return; // shown again meanwhile
    c.joined = false;
    for (const u of [...c.typing.keys()]) stopTyping(c, u);
    await state.conn.request("conversation:leave", { conversationId: c.id }).catch(() => {}); // a reconnect leaves all
  })().finally(() => { c.leaving = null; });
}

// fetchAfter pages the events after seq (a gap, or a truncated replay).
async function fetchAfter(c, seq, quiet) {
  if (c.fetching) return;
  c.fetching = true;
  try {
    let after = seq, more = true;
    while (more) {
      const page = await state.conn.request("conversation:history", { conversationId: c.id, afterSeq: after, limit: 200 });
      for (const ev of page.events) { durable(ev, true); after = Math.max(after, ev.data.seq); }
      more = page.hasMore && page.events.length > 0;
    }
  } catch (e) {
    if (!quiet) showError(e);
  } finally {
    c.fetching = false;
  }
}

// loadOlder loads the page before the oldest message held, and the
// current reactions of its messages.
export async function loadOlder(c) {
  if (c.loadingOlder) return;
  c.loadingOlder = true;
  const sc = $("scroller");
  const fromBottom = sc.scrollHeight - sc.scrollTop;
  try {
    const data = { conversationId: c.id, limit: 50 };
    if (c.loaded && c.oldestSeq) data.beforeSeq = c.oldestSeq;
    const page = await state.conn.request("conversation:history", data);
    for (const ev of page.events) {
      durable(ev, false);
      c.oldestSeq = c.oldestSeq ? Math.min(c.oldestSeq, ev.data.seq) : ev.data.seq;
    }
    c.hasMore = page.hasMore;
    const first = !c.loaded;
    c.loaded = true;
    if (c.id === state.active) {
      renderConversation();
      if (first) sc.scrollTop = sc.scrollHeight;
      else sc.scrollTop = sc.scrollHeight - fromBottom;
    }
    const ids = page.events.filter((ev) => ev.type === "message:new" && c.msgs.has(ev.data.messageId)).map((ev) => ev.data.messageId);
    if (ids.length) fetchReactions(c, ids);
  } catch (e) {
    showError(e);
  } finally {
    c.loadingOlder = false;
  }
}

// adopt takes a conversation one was added to: new in the list until
// opened; the list (fetched soon) brings its title and count.
function adopt(id, participants) {
  const c = conversation(id);
  c.participants = participants;
  c.fresh = true;
  c.touched = new Date().toISOString();
  renderList();
  refreshSoon();
}

export function forget(c) {
  state.convs.delete(c.id);
  if (state.active === c.id) closeConversation();
  renderList();
}

// byActivity orders the list by the time of the last message (or of the
// conversation's creation or adoption here): seqs of different
// conversations do not compare.
export function byActivity() {
  const at = (c) => { const t = c.last && c.last.createdAt ? c.last.createdAt : ""; return t > c.touched ? t : c.touched; };
  return [...state.convs.values()].sort((a, b) => (at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0));
}

// ---- Reading ----

// markRead marks what the user has in front of them read: at once in the
// list, on the server 300 ms later.
export function markRead(c) {
  if (!visible() || c.id !== state.active || !c.joined) return;
  if (markSeen(c)) renderList();
  if (c.lastSeq <= c.read || c.readTimer) return;
  c.readTimer = setTimeout(() => sendRead(c), 300); // one command for a burst of messages
}

// sendRead sends the read marker now: when its timer fires, and when the
// conversation shown is left (what was on screen has been seen, however
// quickly the user went on).
export function sendRead(c) {
  clearTimeout(c.readTimer);
  c.readTimer = null;
  if (!c.joined || !c.loaded || c.lastSeq <= c.read || !state.conn) return;
  c.read = c.lastSeq;
  state.conn.send("message:read", { conversationId: c.id, seq: c.lastSeq });
}
