// The app's state, shared by its modules. Only the page's one thread
// touches it; renders read it, events and replies change it.

export const state = {
  conn: null,
  me: null, // {userId, orgId}
  convs: new Map(), // conversationId -> conversation
  active: null, // conversationId shown
  presence: new Map(), // userId -> {status, lastSeenAt}
  synced: false,
};

// hooks are the renders that modules call after changing the state, set
// by app.js (which imports the modules, not the other way round).
export const hooks = { renderList: () => {}, renderConversation: () => {}, };

// conversation returns the state of conversation id, made empty if new.
export function conversation(id) {
  let c = state.convs.get(id);
  if (!c) {
    c = {
      id, title: "", participants: [], createdBy: "", lastSeq: 0, read: 0, activity: 0,
      unreadCount: 0, fresh: false, last: null, touched: "", // the list: unread, new to me, the last message
      joined: false, joining: null, leaving: null, loaded: false, hasMore: false, oldestSeq: 0, syncing: false,
      msgs: new Map(), pending: new Map(), patches: new Map(), receipts: new Map(), typing: new Map(),
      reactions: new Map(), reactionFetches: 0, reactionLog: [],
    };
    state.convs.set(id, c);
  }
  return c;
}

export const isMe = (userId) => state.me && userId === state.me.userId;
export const visible = () => document.visibilityState === "visible";
