// Reactions: a quick set of emoji per message, the counts and who reacted,
// toggling one's own (message:react), live changes (message:reacted) and
// the current state of the messages shown (message:reactions).
import { el, showError } from "./util.js";
import { state, hooks, isMe } from "./state.js";

export const QUICK = ["👍", "💙", "😂", "🎉", "😮", "👀"]; // one code point each
const CHUNK = 100; // message:reactions takes at most 100 ids

// A conversation's reactions: c.reactions maps a messageId to a Map of
// emoji -> {count, users: Set of the user ids known to have reacted}.
// count is the server's; users may hold fewer (a snapshot lists at most
// 20), so an event is applied only when it changes what is known, which
// makes applying one twice harmless.
function entry(c, messageId, emoji) {
  let byEmoji = c.reactions.get(messageId);
  if (!byEmoji) c.reactions.set(messageId, (byEmoji = new Map()));
  let r = byEmoji.get(emoji);
  if (!r) byEmoji.set(emoji, (r = { count: 0, users: new Set() }));
  return r;
}

function apply(c, d) {
  const r = entry(c, d.messageId, d.emoji);
  if (d.on && !r.users.has(d.userId)) {
    r.users.add(d.userId);
    r.count++;
  } else if (!d.on && r.users.has(d.userId)) {
    r.users.delete(d.userId);
    r.count--;
  } else if (!d.on && r.count > r.users.size) {
    r.count--; // one of those the snapshot did not list
  }
  if (r.count <= 0) c.reactions.get(d.messageId).delete(d.emoji);
}

// reacted applies a message:reacted event (live or replayed since a join).
export function reacted(c, d) {
  if (c.reactionFetches > 0) c.reactionLog.push(d); // applied again over the snapshot
  apply(c, d);
}

// fetchReactions asks for the current reactions of messageIds, in chunks
// of at most 100, and replaces what is held for them.
export async function fetchReactions(c, messageIds) {
  for (let i = 0; i < messageIds.length; i += CHUNK) await fetchChunk(c, messageIds.slice(i, i + CHUNK));
  if (c.id === state.active) hooks.renderConversation();
}

// fetchChunk asks for one chunk; a reply cut short (truncated: it ends
// before the first message whose reactions did not fit) is asked again
// for the rest. Events that came meanwhile are applied again on top of the
// snapshot (harmless if it has them).
async function fetchChunk(c, ids) {
  c.reactionFetches++;
  try {
    while (ids.length) {
      const ack = await state.conn.request("message:reactions", { conversationId: c.id, messageIds: ids });
      const got = ack.reactions || [];
      const done = !ack.truncated ? ids.length : Math.max(1, ids.lastIndexOf(got.length ? got[got.length - 1].messageId : ids[0]) + 1);
      snapshot(c, ids.slice(0, done), got);
      ids = ids.slice(done);
    }
  } catch (e) {
    showError(e);
  } finally {
    if (--c.reactionFetches === 0) c.reactionLog = [];
  }
}

// snapshot replaces the reactions held for ids with those of a reply.
function snapshot(c, ids, reactions) {
  for (const id of ids) c.reactions.delete(id);
  for (const r of reactions) {
    const users = new Set(r.userIds || []);
    if (r.me) users.add(state.me.userId);
    const e = entry(c, r.messageId, r.emoji);
    e.count = r.count;
    e.users = users;
  }
  const mine = new Set(ids);
  for (const d of c.reactionLog) if (mine.has(d.messageId)) apply(c, d);
}

// mine says whether the user reacted to messageId with emoji.
const mine = (c, messageId, emoji) => {
  const r = (c.reactions.get(messageId) || new Map()).get(emoji);
  return !!r && r.users.has(state.me.userId);
};

async function toggle(c, m, emoji) {
  try {
    await state.conn.request("message:react", { conversationId: c.id, messageId: m.messageId, emoji, on: !mine(c, m.messageId, emoji) });
  } catch (e) {
    showError(e);
  }
}

// reactionsSig is what a message's reactions look like, to know when to
// render it again.
export function reactionsSig(c, messageId) {
  const byEmoji = c.reactions.get(messageId);
  return byEmoji ? [...byEmoji].map(([e, r]) => [e, r.count, [...r.users].sort().join(",")]) : [];
}

// who says who reacted, for the title (hover) and screen readers.
function who(r, emoji) {
  const names = [...r.users].map((u) => (isMe(u) ? "you" : u));
  const rest = r.count - names.length;
  return `${names.join(", ")}${rest > 0 ? `${names.length ? " and " : ""}${rest} ${names.length ? "more" : rest === 1 ? "person" : "people"}` : ""} reacted with ${emoji}`;
}

// renderReactions returns the reaction buttons of message m (null when it
// has none): each shows the count, says who reacted (title, label) and
// toggles one's own.
export function renderReactions(c, m) {
  const byEmoji = c.reactions.get(m.messageId);
  if (!byEmoji || byEmoji.size === 0) return null;
  const chips = [...byEmoji].map(([emoji, r]) => {
    const me = r.users.has(state.me.userId);
    return el("button", {
      type: "button", class: `reaction${me ? " own" : ""}`, "aria-pressed": me ? "true" : "false", title: who(r, emoji),
      "aria-label": `${who(r, emoji)}. ${me ? "Remove yours" : "Add yours"}`, "data-key": `react-${m.messageId}-${emoji}`,
      "data-emoji": emoji, onclick: () => toggle(c, m, emoji),
    }, el("span", { "aria-hidden": "true" }, emoji), el("span", { class: "count", "aria-hidden": "true" }, String(r.count)));
  });
  return el("div", { class: "reactions" }, ...chips);
}

// renderPicker is a disclosure with the quick set: keyboard-usable as is.
export function renderPicker(c, m) {
  const d = el("details", { class: "react-picker" },
    el("summary", { "aria-label": "Add a reaction", title: "Add a reaction", "data-key": "pick-" + m.messageId }, "☺+"));
  const list = el("div", { class: "picker-list", role: "group", "aria-label": "Reactions" },
    ...QUICK.map((emoji) => el("button", {
      type: "button", class: "small pick", "aria-label": `React with ${emoji}`, "data-emoji": emoji,
      onclick: () => { d.open = false; toggle(c, m, emoji); },
    }, emoji)));
  d.append(list);
  d.addEventListener("keydown", (e) => { if (e.key === "Escape") { d.open = false; d.querySelector("summary").focus(); } });
  return d;
}

// A click elsewhere closes an open picker, as a menu would.
document.addEventListener("click", (e) => {
  for (const d of document.querySelectorAll("details.react-picker[open]")) if (!d.contains(e.target)) d.open = false;
});
