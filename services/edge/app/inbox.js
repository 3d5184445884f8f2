// The conversation list's unread counts and last messages: from
// conversation:list, kept current by conversation:activity (conversations
// this connection has not joined) and message:new (the one joined).
import { showError } from "./util.js";
import { state, hooks, conversation, isMe, visible } from "./state.js";

export const UNREAD_CAP = 100; // the server counts up to 100 ("100 or more")

// unreadLabel is the badge's text: "99+" stands for the server's 100.
export const unreadLabel = (n) => (n >= UNREAD_CAP ? "99+" : String(n));

// applySummary takes one conversation of conversation:list.
export function applySummary(s) {
  const c = conversation(s.conversationId);
  c.title = s.title;
  c.participants = s.participants;
  c.read = Math.max(c.read, s.read);
  c.activity = Math.max(c.activity, s.lastSeq);
  if (!(c.id === state.active && visible())) c.unreadCount = Math.min(UNREAD_CAP, s.unread || 0);
  if (s.lastMessage) c.last = { ...s.lastMessage };
  else if (s.lastSeq && c.last) c.last = null; // its last message was deleted
  return c;
}

// activity takes a conversation:activity event: a message in a
// conversation not joined here. The server sends at most one a second per
// conversation (the newest), so the count it implies may be short: the
// list is fetched again soon after, which has the true count.
export function activity(d) {
  const c = state.convs.get(d.conversationId);
  if (!c) return refreshSoon(); // one new to us: its title and count come with the list
  if (c.joined) return; // its message:new events count
  c.activity = Math.max(c.activity, d.lastSeq);
  c.last = { senderId: d.senderId, content: d.preview, createdAt: d.createdAt };
  if (!isMe(d.senderId)) c.unreadCount = Math.min(UNREAD_CAP, c.unreadCount + 1);
  hooks.renderList();
  refreshSoon();
}

// newMessage counts a message:new of a joined conversation.
export function newMessage(c, d, live) {
  if (live || !c.last || (c.last.seq && d.seq > c.last.seq)) c.last = { messageId: d.messageId, seq: d.seq, senderId: d.senderId, content: d.content, createdAt: d.createdAt, attachments: d.attachments };
  if (live && !isMe(d.senderId) && !(c.id === state.active && visible())) c.unreadCount = Math.min(UNREAD_CAP, c.unreadCount + 1);
}

// markSeen resets the count: the user has the conversation in front of them.
export function markSeen(c) {
  if (c.unreadCount === 0 && !c.fresh) return false;
  c.unreadCount = 0;
  c.fresh = false;
  return true;
}

const REFRESH_MS = 1500; // at most one list request per this, however busy
const refresh = { timer: null, inFlight: false, again: false };

// refreshSoon fetches the first page of the list (the most recently active
// conversations, where activity shows) once the events have settled; once
// more after it if events came while it was on its way.
export function refreshSoon() {
  if (refresh.inFlight) { refresh.again = true; return; }
  if (refresh.timer) return;
  refresh.timer = setTimeout(async () => {
    refresh.inFlight = true;
    try {
      const page = await state.conn.request("conversation:list", { limit: 50 });
      for (const s of page.conversations) applySummary(s);
      hooks.renderList();
    } catch (e) {
      if (e.code !== "unavailable") showError(e); // a reconnect lists them all
    } finally {
      refresh.timer = null;
      refresh.inFlight = false;
      if (refresh.again) { refresh.again = false; refreshSoon(); }
    }
  }, REFRESH_MS);
}

// previewText is the list's line under a conversation's name.
export function previewText(c) {
  if (!c.last) return "";
  const who = isMe(c.last.senderId) ? "You" : c.last.senderId;
  const files = c.last.attachments && c.last.attachments.length ? `📎 ${c.last.attachments.length}` : "";
  const body = (c.last.content || "").replace(/\s+/g, " ").trim() || files || "(attachment)";
  return `${who}: ${body}`;
}
