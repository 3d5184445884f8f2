// The rendering of the app: the conversation list and the conversation
// shown (its messages, people and typing).
import { $, el, fmtTime, showError, keepingFocus } from "./util.js";
import { state, isMe } from "./state.js";
import { renderReactions, renderPicker, reactionsSig } from "./reactions.js";
import { renderQuote, quoteText, startReply, cancelReply, renderReplyBar } from "./replies.js";
import { renderAttachments } from "./files.js";
import { unreadLabel, previewText } from "./inbox.js";
import { byActivity, join, leave, loadOlder, markRead, sendRead } from "./sync.js";
import { deleteMessage, editMessage, removePerson } from "./app.js";

// ---- Rendering ----

export function renderList() {
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

export function openConversation(id, { keepFocus } = {}) {
  const c = state.convs.get(id);
  if (!c) return;
  const changed = state.active !== id;
  const before = state.convs.get(state.active);
  state.active = id;
  if (changed && before) { sendRead(before); leave(before); }
  if (changed) cancelReply();
  $("placeholder").hidden = true;
  $("conversation").hidden = false;
  $("app").classList.add("in-conversation");
  join(c).then(() => { if (!c.loaded) return loadOlder(c); }).then(() => markRead(c)).catch(showError);
  renderList();
  renderConversation(changed);
  if (changed && !keepFocus) $("composer-input").focus();
}

export function closeConversation() {
  const c = state.convs.get(state.active);
  state.active = null;
  if (c) { sendRead(c); leave(c); }
  cancelReply();
  $("conversation").hidden = true;
  $("placeholder").hidden = false;
  $("app").classList.remove("in-conversation");
  renderList();
}

export function renderConversation(toBottom) {
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

export function renderPeople() {
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

export function renderTyping() {
  const c = state.convs.get(state.active);
  const who = c ? [...c.typing.keys()] : [];
  $("typing").textContent = who.length === 0 ? "" : `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`;
}

export function autosize() {
  const ta = $("composer-input");
  ta.style.height = "auto";
  ta.style.height = Math.min(ta.scrollHeight + 2, 160) + "px";
}

export function setStatus(text, down) {
  $("status").textContent = text;
  $("status").classList.toggle("down", down);
}
