// Switchboard's browser app: plain JavaScript modules on the native JSON
// protocol (docs/protocol.md) over /ws?access_token=... of the edge that
// served it. This module holds the sync (list, join, history), the events
// and the rendering of a conversation; reactions.js, replies.js, files.js
// and inbox.js hold those features, connection.js the socket.
import { $, el, newId, fmtTime, ServerError, showAlert, showError, keepingFocus } from "./util.js";
import { Connection, tokenExpired } from "./connection.js";
import { state, hooks, conversation, isMe, visible } from "./state.js";
import { reacted, fetchReactions, renderReactions, renderPicker, reactionsSig } from "./reactions.js";
import { renderQuote, quoteText, startReply, cancelReply, replyingTo, renderReplyBar } from "./replies.js";
import { setupComposer, takeChosen, putBack, hasChosen, uploadAll, renderAttachments, forgetFiles } from "./files.js";
import { applySummary, activity, newMessage, markSeen, refreshSoon, unreadLabel, previewText } from "./inbox.js";

// ---- Events ----

function onEvent(type, d) {
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

function stopTyping(c, user) {
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

async function onSession(session) {
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
function join(c) {
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
function leave(c) {
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
async function loadOlder(c) {
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

function forget(c) {
  state.convs.delete(c.id);
  if (state.active === c.id) closeConversation();
  renderList();
}

// byActivity orders the list by the time of the last message (or of the
// conversation's creation or adoption here): seqs of different
// conversations do not compare.
function byActivity() {
  const at = (c) => { const t = c.last && c.last.createdAt ? c.last.createdAt : ""; return t > c.touched ? t : c.touched; };
  return [...state.convs.values()].sort((a, b) => (at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0));
}

// ---- Reading, typing ----

function markRead(c) {
  if (!visible() || c.id !== state.active || !c.joined) return;
  if (markSeen(c)) renderList();
  if (c.lastSeq <= c.read || c.readTimer) return;
  c.readTimer = setTimeout(() => {
    c.readTimer = null;
    if (c.lastSeq > c.read) {
      c.read = c.lastSeq;
      state.conn.send("message:read", { conversationId: c.id, seq: c.lastSeq });
    }
  }, 300);
}

const myTyping = { conv: null, sentAt: 0, stopTimer: null };

function onComposerInput() {
  const c = state.convs.get(state.active);
  const text = $("composer-input").value;
  autosize();
  if (!c) return;
  if (!text.trim()) return stopMyTyping();
  const now = Date.now();
  if (myTyping.conv !== c.id || now - myTyping.sentAt > 4000) {
    if (myTyping.conv && myTyping.conv !== c.id) stopMyTyping();
    myTyping.conv = c.id;
    myTyping.sentAt = now;
    state.conn.send("message:typing", { conversationId: c.id, isTyping: true });
  }
  clearTimeout(myTyping.stopTimer);
  myTyping.stopTimer = setTimeout(stopMyTyping, 3000);
}

function stopMyTyping() {
  clearTimeout(myTyping.stopTimer);
  if (myTyping.conv) state.conn.send("message:typing", { conversationId: myTyping.conv, isTyping: false });
  myTyping.conv = null;
  myTyping.sentAt = 0;
}

// ---- Commands from the UI ----

// sendMessage sends the composer's text, the message it replies to and
// its files: each file is uploaded first, then the message names them.
async function sendMessage(e) {
  e.preventDefault();
  const c = state.convs.get(state.active);
  const input = $("composer-input");
  const content = input.value;
  if (!c || (!content.trim() && !hasChosen())) return;
  stopMyTyping();
  const files = takeChosen();
  const replyTo = replyingTo(c);
  const p = { clientMsgId: newId(), content: content.trim() ? content : "", senderId: state.me.userId, replyTo, status: files.length ? "uploading…" : "sending…" };
  c.pending.set(p.clientMsgId, p);
  input.value = "";
  cancelReply();
  autosize();
  renderConversation(true);
  try {
    const attachments = await uploadAll(c.id, files, (status) => { p.status = status; renderConversation(); });
    p.status = "sending…";
    renderConversation();
    await sendWithRetry({ conversationId: c.id, content: p.content, clientMsgId: p.clientMsgId, ...(replyTo && { replyTo }), ...(attachments.length && { attachments }) });
  } catch (err) {
    c.pending.delete(p.clientMsgId);
    if (!input.value) input.value = content;
    if (files.length) putBack(files);
    if (replyTo && state.active === c.id) { startReply(c, { messageId: replyTo }); }
    showError(err);
    renderConversation();
  }
}

// sendWithRetry sends message:send; a lost connection is retried with the
// same clientMsgId: the server keeps one message per clientMsgId.
async function sendWithRetry(data) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await state.conn.request("message:send", data);
    } catch (err) {
      if (err.code !== "unavailable" || attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
    }
  }
}

async function createConversation(e) {
  e.preventDefault();
  const title = $("create-title").value.trim();
  const people = splitIds($("create-people").value);
  try {
    const ack = await state.conn.request("conversation:create", title ? { participants: people, title } : { participants: people });
    $("create-title").value = $("create-people").value = "";
    const c = conversation(ack.conversationId);
    c.title = title;
    c.touched = new Date().toISOString();
    c.participants = ack.participants;
    await join(c);
    openConversation(c.id);
  } catch (err) {
    showError(err);
  }
}

async function addPeople(e) {
  e.preventDefault();
  const c = state.convs.get(state.active);
  const ids = splitIds($("add-input").value);
  if (!c || !ids.length) return;
  try {
    const ack = await state.conn.request("conversation:add", { conversationId: c.id, userIds: ids });
    c.participants = ack.participants;
    $("add-input").value = "";
    renderPeople();
  } catch (err) {
    showError(err);
  }
}

async function removePerson(c, userId) {
  try {
    const ack = await state.conn.request("conversation:remove", { conversationId: c.id, userId });
    c.participants = ack.participants;
    if (userId === state.me.userId) forget(c);
    else renderPeople();
  } catch (err) {
    showError(err);
  }
}

async function editMessage(c, m, content) {
  try {
    await state.conn.request("message:edit", { conversationId: c.id, messageId: m.messageId, content });
    m.editing = false;
    renderConversation();
  } catch (err) {
    showError(err);
  }
}

async function deleteMessage(c, m) {
  try {
    await state.conn.request("message:delete", { conversationId: c.id, messageId: m.messageId });
  } catch (err) {
    m.confirmDelete = false;
    renderConversation();
    showError(err);
  }
}

const splitIds = (s) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

// ---- Rendering ----

function renderList() {
  const ul = $("conversations");
  const list = byActivity();
  keepingFocus(() => ul.replaceChildren(...list.map(listItem)));
  $("no-conversations").hidden = list.length > 0;
}

// listItem is one conversation of the list: its name, the last message
// and the unread count ("new" for one just added to).
function listItem(c) {
  const name = c.title || c.participants.filter((p) => !isMe(p)).join(", ") || "Just you";
  const n = c.unreadCount;
  const badge = n > 0 ? el("span", { class: "badge", "data-unread": n, "aria-label": n >= 100 ? "100 or more unread" : `${n} unread` }, unreadLabel(n))
    : c.fresh ? el("span", { class: "badge", "aria-label": "new" }, "new") : null;
  const preview = previewText(c);
  return el("li", { class: n > 0 || c.fresh ? "unread" : "", "data-conversation": c.id },
    el("button", { type: "button", "aria-current": c.id === state.active ? "true" : "false", "data-key": "conv-" + c.id, onclick: () => openConversation(c.id) },
      el("span", { class: "entry" }, el("span", { class: "name" }, name), preview ? el("span", { class: "preview" }, preview) : null),
      badge));
}

function openConversation(id, { keepFocus } = {}) {
  const c = state.convs.get(id);
  if (!c) return;
  const changed = state.active !== id;
  const before = state.convs.get(state.active);
  state.active = id;
  if (changed && before) leave(before);
  if (changed) cancelReply();
  $("placeholder").hidden = true;
  $("conversation").hidden = false;
  $("app").classList.add("in-conversation");
  join(c).then(() => { if (!c.loaded) return loadOlder(c); }).then(() => markRead(c)).catch(showError);
  renderList();
  renderConversation(changed);
  if (changed && !keepFocus) $("composer-input").focus();
}

function closeConversation() {
  const c = state.convs.get(state.active);
  state.active = null;
  if (c) leave(c);
  cancelReply();
  $("conversation").hidden = true;
  $("placeholder").hidden = false;
  $("app").classList.remove("in-conversation");
  renderList();
}

function renderConversation(toBottom) {
  const c = state.convs.get(state.active);
  if (!c) return;
  $("conv-title").textContent = c.title || "Conversation";
  renderPeople();
  renderTyping();
  renderReplyBar();
  const sc = $("scroller");
  const atBottom = toBottom || sc.scrollHeight - sc.scrollTop - sc.clientHeight < 40;
  const keep = new Map();
  const items = [...messageItems(c, keep), ...pendingItems(c, keep)];
  c.dom = keep;
  const ol = $("messages");
  keepingFocus(() => {
    items.forEach((li, i) => { if (ol.children[i] !== li) ol.insertBefore(li, ol.children[i] || null); });
    while (ol.children.length > items.length) ol.lastChild.remove();
  });
  $("older").hidden = !c.hasMore;
  if (atBottom) sc.scrollTop = sc.scrollHeight;
}

// messageItems returns the elements of c's messages in seq order. Elements
// are kept while their message does not change, so that a new event
// neither moves the focus nor wipes an edit being typed.
function messageItems(c, keep) {
  const msgs = [...c.msgs.values()].sort((a, b) => a.seq - b.seq);
  const others = c.participants.filter((p) => !isMe(p));
  return msgs.map((m) => {
    const sig = JSON.stringify([m.content, m.deleted, m.edited, m.editing, m.confirmDelete, m.editing ? "" : receiptText(c, m, others),
      m.replyTo ? [quoteText(c, m.replyTo), c.msgs.has(m.replyTo)] : "", reactionsSig(c, m.messageId)]);
    let entry = c.dom && c.dom.get(m.messageId);
    if (!entry || entry.sig !== sig) entry = { sig, li: renderMessage(c, m, others) };
    keep.set(m.messageId, entry);
    return entry.li;
  });
}

// pendingItems returns the elements of one's messages on their way.
function pendingItems(c, keep) {
  return [...c.pending.values()].map((p) => {
    let entry = c.dom && c.dom.get(p.clientMsgId);
    if (!entry || entry.sig !== p.status) {
      entry = { sig: p.status, li: el("li", { class: "msg mine pending", "data-pending": p.clientMsgId },
        el("div", { class: "meta" }, el("span", { class: "sender" }, "You"), el("span", { class: "pending-status", role: "status" }, p.status)),
        p.replyTo ? renderQuote(c, p) : null,
        p.content ? el("div", { class: "body" }, p.content) : null) };
    }
    keep.set(p.clientMsgId, entry);
    return entry.li;
  });
}

// renderMessage renders one message: its sender, time and tools (reply,
// react, edit, delete) on top, the quote of the message it answers, its
// text and attachments, its reactions and the receipt of one's own.
function renderMessage(c, m, others) {
  const mine = isMe(m.senderId);
  const li = el("li", { class: `msg${mine ? " mine" : ""}${m.deleted ? " deleted" : ""}`, "data-seq": m.seq, "data-message": m.messageId },
    el("div", { class: "meta" },
      el("span", { class: "sender" }, mine ? "You" : m.senderId),
      el("time", { datetime: m.createdAt }, fmtTime(m.createdAt)),
      m.edited && !m.deleted ? el("span", {}, "(edited)") : null,
      m.deleted || m.editing ? null : actions(c, m, mine)));
  if (m.editing) return editor(c, m, li);
  if (m.deleted) {
    li.append(el("div", { class: "body" }, "Message deleted"));
    return li;
  }
  li.append(renderQuote(c, m) || "");
  if (m.content) li.append(el("div", { class: "body" }, m.content));
  li.append(renderAttachments(m.attachments) || "", renderReactions(c, m) || "");
  if (mine) li.append(el("div", { class: "receipt" }, receiptText(c, m, others)));
  return li;
}

// actions are a message's buttons: reply, and edit and delete for one's own.
function actions(c, m, mine) {
  const reply = el("button", { type: "button", class: "small", "data-key": "reply-" + m.messageId, "aria-label": "Reply to this message", onclick: () => startReply(c, m) }, "Reply");
  if (!mine) return el("div", { class: "actions" }, renderPicker(c, m), reply);
  // The confirmation is the message's state, not the button's: an event
  // that re-renders the message (a receipt) must not undo it.
  const del = el("button", { type: "button", class: "small", "data-key": "delete-" + m.messageId, "aria-label": "Delete message" },
    m.confirmDelete ? "Really delete?" : "Delete");
  del.addEventListener("click", () => {
    if (m.confirmDelete) return deleteMessage(c, m);
    m.confirmDelete = true;
    renderConversation();
  });
  return el("div", { class: "actions" }, renderPicker(c, m), reply,
    el("button", { type: "button", class: "small", "data-key": "edit-" + m.messageId, "aria-label": "Edit message", onclick: () => { m.editing = true; renderConversation(); } }, "Edit"),
    del);
}

// editor turns li into the editor of one's message m.
function editor(c, m, li) {
  const ta = el("textarea", { "aria-label": "Edit message", rows: 2, maxlength: 4096 });
  ta.value = m.content;
  const save = () => { if (ta.value.trim()) editMessage(c, m, ta.value); };
  const cancel = () => { m.editing = false; renderConversation(); $("composer-input").focus(); };
  ta.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); save(); }
    if (e.key === "Escape") cancel();
  });
  li.append(ta, el("div", { class: "actions" },
    el("button", { type: "button", class: "small", onclick: save }, "Save"),
    el("button", { type: "button", class: "small", onclick: cancel }, "Cancel")));
  setTimeout(() => ta.focus());
  return li;
}

// receiptText says who has read (or received) one's own message.
function receiptText(c, m, others) {
  if (!isMe(m.senderId) || m.deleted) return "";
  const readers = others.filter((u) => (c.receipts.get(u) || {}).read >= m.seq);
  if (readers.length) return `Read by ${readers.join(", ")}`;
  return others.some((u) => (c.receipts.get(u) || {}).delivered >= m.seq) ? "Delivered" : "Sent";
}

function renderPeople() {
  const c = state.convs.get(state.active);
  if (!c) return;
  $("people-count").textContent = c.participants.length;
  keepingFocus(() => $("people").replaceChildren(...c.participants.map((u) => {
    const p = state.presence.get(u) || { status: "offline" };
    const me = u === state.me.userId;
    const canRemove = me || c.createdBy === state.me.userId;
    return el("li", { "data-user": u },
      el("span", { class: `dot ${p.status}`, "aria-hidden": "true" }),
      el("span", {}, me ? `${u} (you)` : u),
      el("span", { class: "presence-label", "data-presence": u }, p.status),
      canRemove && !me ? el("button", { type: "button", class: "small", "data-key": "remove-" + u, "aria-label": `Remove ${u}`, onclick: () => removePerson(c, u) }, "Remove") : null);
  })));
}

function renderTyping() {
  const c = state.convs.get(state.active);
  const who = c ? [...c.typing.keys()] : [];
  $("typing").textContent = who.length === 0 ? "" : `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`;
}

function autosize() {
  const ta = $("composer-input");
  ta.style.height = "auto";
  ta.style.height = Math.min(ta.scrollHeight + 2, 160) + "px";
}

function setStatus(text, down) {
  $("status").textContent = text;
  $("status").classList.toggle("down", down);
}

// ---- Sign in and out ----

function start(token) {
  sessionStorage.setItem("switchboard-token", token);
  $("login").hidden = true;
  $("app").hidden = false;
  setStatus("Connecting…", true);
  state.conn = new Connection(token, {
    onEvent,
    onUp: onSession,
    onDown: (code, attempt) => {
      setStatus(`Connection lost${code === 1012 ? " (server restarting)" : ""}: reconnecting… (attempt ${attempt})`, true);
      for (const c of state.convs.values()) for (const u of [...c.typing.keys()]) stopTyping(c, u);
    },
    onFatal: (why) => { signOut(); $("login-error").textContent = why; $("login-error").hidden = false; },
  });
  state.conn.open();
}

function signOut() {
  if (state.conn) state.conn.stop();
  sessionStorage.removeItem("switchboard-token");
  state.convs.clear();
  state.presence.clear();
  state.active = null;
  forgetFiles();
  $("app").hidden = true;
  $("login").hidden = false;
  closeConversation();
}

function init() {
  Object.assign(hooks, { renderList, renderConversation });
  setupComposer();
  $("reply-cancel").addEventListener("click", () => { cancelReply(); $("composer-input").focus(); });
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token-input").value.trim().replace(/^Bearer\s+/i, "");
    $("login-error").hidden = true;
    if (token.split(".").length !== 3) {
      $("login-error").textContent = "That does not look like a JWT (three parts separated by dots).";
      $("login-error").hidden = false;
      return;
    }
    start(token);
  });
  $("logout").addEventListener("click", signOut);
  $("alert-close").addEventListener("click", () => { $("alert").hidden = true; });
  $("create-form").addEventListener("submit", createConversation);
  $("add-form").addEventListener("submit", addPeople);
  $("leave").addEventListener("click", () => { const c = state.convs.get(state.active); if (c) removePerson(c, state.me.userId); });
  $("composer").addEventListener("submit", sendMessage);
  $("composer-input").addEventListener("input", onComposerInput);
  $("composer-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
    if (e.key === "Escape" && replyingTo(state.convs.get(state.active))) cancelReply();
  });
  $("back").addEventListener("click", closeConversation);
  $("older").addEventListener("click", () => { const c = state.convs.get(state.active); if (c) loadOlder(c); });
  $("scroller").addEventListener("scroll", () => {
    const c = state.convs.get(state.active);
    if (c && c.hasMore && $("scroller").scrollTop < 40) loadOlder(c);
  });
  const seen = () => { const c = state.convs.get(state.active); if (c) markRead(c); };
  window.addEventListener("focus", seen);
  document.addEventListener("visibilitychange", () => {
    seen();
    if (state.conn && state.me) state.conn.send("presence:set", { status: document.visibilityState === "visible" ? "online" : "away" });
  });
  const saved = sessionStorage.getItem("switchboard-token");
  if (saved && !tokenExpired(saved)) start(saved);
  else $("token-input").focus();
}

init();
