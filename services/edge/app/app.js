// Switchboard's browser app: plain JavaScript modules on the native JSON
// protocol (docs/protocol.md) over /ws?access_token=... of the edge that
// served it. This module signs in and out and holds the commands of
// the UI; sync.js holds the events and the sync, view.js the rendering,
// reactions.js, replies.js, files.js and inbox.js those features,
// connection.js the socket.
import { $, newId, showError } from "./util.js";
import { Connection, tokenExpired } from "./connection.js";
import { state, hooks, conversation } from "./state.js";
import { startReply, cancelReply, replyingTo } from "./replies.js";
import { setupComposer, takeChosen, putBack, hasChosen, uploadAll, forgetFiles } from "./files.js";
import { forget, join, loadOlder, markRead, onEvent, onSession, stopTyping } from "./sync.js";
import { autosize, closeConversation, openConversation, renderConversation, renderList, renderPeople, setStatus } from "./view.js";

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

export async function removePerson(c, userId) {
  try {
    const ack = await state.conn.request("conversation:remove", { conversationId: c.id, userId });
    c.participants = ack.participants;
    if (userId === state.me.userId) forget(c);
    else renderPeople();
  } catch (err) {
    showError(err);
  }
}

export async function editMessage(c, m, content) {
  try {
    await state.conn.request("message:edit", { conversationId: c.id, messageId: m.messageId, content });
    m.editing = false;
    renderConversation();
  } catch (err) {
    showError(err);
  }
}

export async function deleteMessage(c, m) {
  try {
    await state.conn.request("message:delete", { conversationId: c.id, messageId: m.messageId });
  } catch (err) {
    m.confirmDelete = false;
    renderConversation();
    showError(err);
  }
}

const splitIds = (s) => s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

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
  if (matchMedia("(max-width: 700px)").matches) $("composer-input").placeholder = "Write a message"; // the hint would take three lines
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
