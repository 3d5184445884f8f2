// Switchboard's browser app: plain JavaScript on the native JSON protocol
// (docs/protocol.md) over /ws?access_token=... of the edge that served it.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);

  // el builds an element: el("li", {class: "x", onclick: f}, child, "text").
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  const newId = () => Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "");

  // ServerError is an error reply: its frame type and data.
  class ServerError extends Error {
    constructor(type, data) {
      super((data && data.message) || type);
      this.type = type;
      this.code = data && data.code;
      this.fields = (data && data.fields) || [];
      this.retryAfterMs = data && data.retryAfterMs;
    }
    describe() {
      const f = this.fields.map((x) => `${x.field} ${x.reason}`).join("; ");
      return `${this.message}${f ? ` (${f})` : ""}${this.retryAfterMs ? `; retry in ${Math.ceil(this.retryAfterMs / 1000)} s` : ""}`;
    }
  }

  // Connection is one WebSocket with requests by id and reconnection.
  class Connection {
    constructor(token, { onEvent, onUp, onDown, onFatal }) {
      Object.assign(this, { token, onEvent, onUp, onDown, onFatal });
      this.pending = new Map();
      this.seq = 0;
      this.attempt = 0;
      this.everOpened = false;
      this.stopped = false;
    }

    open() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${proto}//${location.host}/ws?access_token=${encodeURIComponent(this.token)}`);
      this.ws = ws;
      let opened = false;
      ws.onopen = () => { opened = true; this.everOpened = true; this.attempt = 0; };
      ws.onmessage = (m) => this.receive(m.data);
      ws.onclose = (e) => {
        if (this.ws !== ws) return;
        this.ws = null;
        for (const p of this.pending.values()) p.reject(new ServerError("error", { code: "unavailable", message: "the connection was lost" }));
        this.pending.clear();
        if (this.stopped) return;
        if (e.code === 4001) return this.onFatal("Your token expired. Paste a new one.");
        if (!opened && !this.everOpened) return this.onFatal("Could not connect: the token was refused, or the server is not reachable.");
        if (tokenExpired(this.token)) return this.onFatal("Your token expired. Paste a new one.");
        this.attempt++;
        const delay = Math.min(5000, 300 * 2 ** Math.min(this.attempt, 5)) * (0.75 + Math.random() / 2);
        this.onDown(e.code, this.attempt);
        this.timer = setTimeout(() => this.open(), delay);
      };
    }

    receive(text) {
      let f;
      try { f = JSON.parse(text); } catch { return; }
      if (f.id && this.pending.has(f.id)) {
        const p = this.pending.get(f.id);
        this.pending.delete(f.id);
        if (f.type === "ack" || f.type === "pong") p.resolve(f.data || {});
        else p.reject(new ServerError(f.type, f.data));
        return;
      }
      if (f.type === "session") this.onUp(f.data);
      this.onEvent(f.type, f.data || {});
    }

    // request sends a command with an id and resolves with its ack data.
    request(type, data, timeout = 10000) {
      return new Promise((resolve, reject) => {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
          reject(new ServerError("error", { code: "unavailable", message: "not connected; try again in a moment" }));
          return;
        }
        const id = "r" + ++this.seq;
        const timer = setTimeout(() => { this.pending.delete(id); reject(new ServerError("error", { code: "unavailable", message: `${type}: no reply` })); }, timeout);
        this.pending.set(id, {
          resolve: (v) => { clearTimeout(timer); resolve(v); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        });
        this.ws.send(JSON.stringify({ id, type, data }));
      });
    }

    // send sends a command without an id: errors come back as events.
    send(type, data) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type, data }));
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.ws) this.ws.close(1000);
    }
  }

  function tokenExpired(token) {
    try {
      const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
    } catch {
      return false;
    }
  }

  // ---- State ----

  const state = {
    conn: null,
    me: null, // {userId, orgId}
    convs: new Map(), // conversationId -> conversation
    active: null, // conversationId shown
    presence: new Map(), // userId -> {status, lastSeenAt}
    synced: false,
  };
  const MAX_BACKGROUND_JOINS = 20;

  function conversation(id) {
    let c = state.convs.get(id);
    if (!c) {
      c = {
        id, title: "", participants: [], createdBy: "", lastSeq: 0, read: 0, unread: false, activity: 0,
        joined: false, joining: null, loaded: false, hasMore: false, oldestSeq: 0, syncing: false,
        msgs: new Map(), pending: new Map(), patches: new Map(), receipts: new Map(), typing: new Map(),
      };
      state.convs.set(id, c);
    }
    return c;
  }

  // ---- Events ----

  function onEvent(type, d) {
    switch (type) {
      case "message:new": case "message:edited": case "message:deleted": case "message:reacted": case "conversation:updated":
        return durable({ type, data: d }, true);
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
      if (ev.type === "conversation:updated" && d.participants.includes(state.me.userId)) adopt(d.conversationId);
      return;
    }
    if (live && c.joined && !c.syncing && d.prevSeq > c.lastSeq && c.lastSeq > 0) fetchAfter(c, c.lastSeq);
    c.lastSeq = Math.max(c.lastSeq, d.seq);
    c.activity = Math.max(c.activity, d.seq);
    switch (ev.type) {
      case "message:new": addMessage(c, d, live); break;
      case "message:edited": patch(c, d.messageId, { content: d.content, edited: true }); break;
      case "message:deleted": patch(c, d.messageId, { content: "", deleted: true }); break;
      case "conversation:updated":
        c.participants = d.participants;
        if (!d.participants.includes(state.me.userId)) { forget(c); return; }
        break;
    }
    if (c.id === state.active) { renderConversation(); markRead(c); }
    renderList();
  }

  function addMessage(c, d, live) {
    if (c.msgs.has(d.messageId)) return; // replayed and live: shown once
    const m = { messageId: d.messageId, seq: d.seq, senderId: d.senderId, content: d.content, createdAt: d.createdAt, clientMsgId: d.clientMsgId };
    Object.assign(m, c.patches.get(d.messageId));
    c.patches.delete(d.messageId);
    c.msgs.set(d.messageId, m);
    if (d.senderId === state.me.userId) c.pending.delete(d.clientMsgId);
    if (live && d.senderId !== state.me.userId && !(c.id === state.active && visible())) c.unread = true;
    if (c.typing.has(d.senderId)) stopTyping(c, d.senderId);
  }

  function patch(c, messageId, fields) {
    const m = c.msgs.get(messageId);
    if (m) Object.assign(m, fields);
    else c.patches.set(messageId, { ...c.patches.get(messageId), ...fields }); // its message:new is in an older page
  }

  function typing(d) {
    const c = state.convs.get(d.conversationId);
    if (!c || d.userId === state.me.userId) return;
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
    if (d.userId === state.me.userId) {
      c.read = Math.max(c.read, d.read);
      if (c.read >= c.lastSeq) c.unread = false;
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

  // sync lists the conversations and (re)joins them: those joined before
  // with sinceSeq, so that nothing sent meanwhile is lost or doubled.
  async function sync() {
    const rejoin = [...state.convs.values()].filter((c) => c.joined);
    for (const c of state.convs.values()) { c.joined = false; c.joining = null; }
    let cursor;
    const seen = new Set();
    do {
      const page = await state.conn.request("conversation:list", cursor ? { limit: 100, cursor } : { limit: 100 });
      for (const s of page.conversations) {
        seen.add(s.conversationId);
        const c = conversation(s.conversationId);
        c.title = s.title;
        c.participants = s.participants;
        c.read = Math.max(c.read, s.read);
        c.activity = Math.max(c.activity, s.lastSeq);
        if (s.lastSeq > c.read) c.unread = true; // lastSeq past the read marker
      }
      cursor = page.cursor;
    } while (cursor);
    for (const c of [...state.convs.values()]) if (!seen.has(c.id)) forget(c);
    renderList();
    const wanted = new Set(rejoin.filter((c) => seen.has(c.id)));
    for (const c of byActivity().slice(0, MAX_BACKGROUND_JOINS)) wanted.add(c);
    if (state.active && state.convs.has(state.active)) wanted.add(state.convs.get(state.active));
    await Promise.all([...wanted].map((c) => join(c).catch(showError)));
    state.synced = true;
    if (state.active) openConversation(state.active, { keepFocus: true });
  }

  // join starts live events of c; with a seq held, sinceSeq returns what
  // was missed.
  function join(c) {
    if (c.joined) return Promise.resolve();
    if (c.joining) return c.joining;
    c.joining = (async () => {
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
        for (const u of ack.typing) if (u !== state.me.userId) c.typing.set(u, setTimeout(() => stopTyping(c, u), 8000));
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

  // loadOlder loads the page before the oldest message held.
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
    } catch (e) {
      showError(e);
    } finally {
      c.loadingOlder = false;
    }
  }

  // adopt takes a conversation one was added to.
  function adopt(id) {
    const c = conversation(id);
    c.unread = true;
    join(c).catch(showError);
    renderList();
  }

  function forget(c) {
    state.convs.delete(c.id);
    if (state.active === c.id) closeConversation();
    renderList();
  }

  function byActivity() {
    return [...state.convs.values()].sort((a, b) => Math.max(b.activity, b.lastSeq) - Math.max(a.activity, a.lastSeq));
  }

  // ---- Reading, typing ----

  const visible = () => document.visibilityState === "visible";

  function markRead(c) {
    if (!visible() || c.id !== state.active || !c.joined) return;
    if (c.unread) { c.unread = false; renderList(); }
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

  async function sendMessage(e) {
    e.preventDefault();
    const c = state.convs.get(state.active);
    const input = $("composer-input");
    const content = input.value;
    if (!c || !content.trim()) return;
    stopMyTyping();
    const clientMsgId = newId();
    c.pending.set(clientMsgId, { clientMsgId, content, senderId: state.me.userId });
    input.value = "";
    autosize();
    renderConversation(true);
    try {
      // A lost connection is retried with the same clientMsgId: the server
      // keeps one message per clientMsgId.
      for (let attempt = 0; ; attempt++) {
        try {
          await state.conn.request("message:send", { conversationId: c.id, content, clientMsgId });
          break;
        } catch (err) {
          if (err.code !== "unavailable" || attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
        }
      }
    } catch (err) {
      c.pending.delete(clientMsgId);
      if (!input.value) input.value = content;
      showError(err);
      renderConversation();
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
    keepingFocus(() => ul.replaceChildren(...list.map((c) => {
      const name = c.title || c.participants.filter((p) => p !== state.me.userId).join(", ") || "Just you";
      return el("li", { class: c.unread ? "unread" : "" },
        el("button", { type: "button", "aria-current": c.id === state.active ? "true" : "false", "data-key": "conv-" + c.id, onclick: () => openConversation(c.id) },
          el("span", { class: "name" }, name),
          c.unread ? el("span", { class: "badge", "aria-label": "unread" }, "new") : null));
    })));
    $("no-conversations").hidden = list.length > 0;
  }

  function openConversation(id, { keepFocus } = {}) {
    const c = state.convs.get(id);
    if (!c) return;
    const changed = state.active !== id;
    state.active = id;
    $("placeholder").hidden = true;
    $("conversation").hidden = false;
    $("app").classList.add("in-conversation");
    join(c).then(() => { if (!c.loaded) return loadOlder(c); }).then(() => markRead(c)).catch(showError);
    renderList();
    renderConversation(changed);
    if (changed && !keepFocus) $("composer-input").focus();
  }

  function closeConversation() {
    state.active = null;
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
    const sc = $("scroller");
    const atBottom = toBottom || sc.scrollHeight - sc.scrollTop - sc.clientHeight < 40;
    const msgs = [...c.msgs.values()].sort((a, b) => a.seq - b.seq);
    const others = c.participants.filter((p) => p !== state.me.userId);
    // Elements are kept while their message does not change, so that a new
    // event neither moves the focus nor wipes an edit being typed.
    const items = [], keep = new Map();
    for (const m of msgs) {
      const sig = JSON.stringify([m.content, m.deleted, m.edited, m.editing, m.confirmDelete, m.editing ? "" : receiptText(c, m, others)]);
      let entry = c.dom && c.dom.get(m.messageId);
      if (!entry || entry.sig !== sig) entry = { sig, li: renderMessage(c, m, others) };
      keep.set(m.messageId, entry);
      items.push(entry.li);
    }
    for (const p of c.pending.values()) {
      let entry = c.dom && c.dom.get(p.clientMsgId);
      if (!entry) entry = { li: el("li", { class: "msg mine pending" },
        el("div", { class: "meta" }, el("span", { class: "sender" }, "You"), el("span", {}, "sending…")),
        el("div", { class: "body" }, p.content)) };
      keep.set(p.clientMsgId, entry);
      items.push(entry.li);
    }
    c.dom = keep;
    const ol = $("messages");
    keepingFocus(() => {
      items.forEach((li, i) => { if (ol.children[i] !== li) ol.insertBefore(li, ol.children[i] || null); });
      while (ol.children.length > items.length) ol.lastChild.remove();
    });
    $("older").hidden = !c.hasMore;
    if (atBottom) sc.scrollTop = sc.scrollHeight;
  }

  function renderMessage(c, m, others) {
    const mine = m.senderId === state.me.userId;
    const li = el("li", { class: `msg${mine ? " mine" : ""}${m.deleted ? " deleted" : ""}`, "data-seq": m.seq, "data-message": m.messageId },
      el("div", { class: "meta" },
        el("span", { class: "sender" }, mine ? "You" : m.senderId),
        el("time", { datetime: m.createdAt }, fmtTime(m.createdAt)),
        m.edited && !m.deleted ? el("span", {}, "(edited)") : null));
    if (m.editing) {
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
    li.append(el("div", { class: "body" }, m.deleted ? "Message deleted" : m.content));
    if (mine && !m.deleted) {
      li.append(el("div", { class: "receipt" }, receiptText(c, m, others)));
      // The confirmation is the message's state, not the button's: an
      // event that re-renders the message (a receipt) must not undo it.
      const del = el("button", { type: "button", class: "small", "data-key": "delete-" + m.messageId, "aria-label": "Delete message" },
        m.confirmDelete ? "Really delete?" : "Delete");
      del.addEventListener("click", () => {
        if (m.confirmDelete) return deleteMessage(c, m);
        m.confirmDelete = true;
        renderConversation();
      });
      li.append(el("div", { class: "actions" },
        el("button", { type: "button", class: "small", "data-key": "edit-" + m.messageId, "aria-label": "Edit message", onclick: () => { m.editing = true; renderConversation(); } }, "Edit"),
        del));
    }
    return li;
  }

  // receiptText says who has read (or received) one's own message.
  function receiptText(c, m, others) {
    if (m.senderId !== state.me.userId || m.deleted) return "";
    const readers = others.filter((u) => (c.receipts.get(u) || {}).read >= m.seq);
    if (readers.length) return `Read by ${readers.join(", ")}`;
    return others.some((u) => (c.receipts.get(u) || {}).delivered >= m.seq) ? "Delivered" : "Sent";
  }

  // keepingFocus runs render and gives the focus back to the element with
  // the same data-key, when render replaced the focused one.
  function keepingFocus(render) {
    const key = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.key;
    render();
    if (key && (!document.activeElement || document.activeElement.dataset.key !== key)) {
      const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus();
    }
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

  let alertTimer;
  function showAlert(text) {
    $("alert-text").textContent = text;
    $("alert").hidden = false;
    clearTimeout(alertTimer);
    alertTimer = setTimeout(() => { $("alert").hidden = true; }, 10000);
  }
  const showError = (e) => showAlert(e instanceof ServerError ? e.describe() : String(e && e.message ? e.message : e));

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
    $("app").hidden = true;
    $("login").hidden = false;
    closeConversation();
  }

  function init() {
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
})();
