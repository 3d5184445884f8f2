// Replies: the message being answered in the composer (replyTo of
// message:send) and the quote a reply shows of the message it answers.
import { $, el } from "./util.js";
import { state, isMe } from "./state.js";

const reply = { conv: null, messageId: null }; // the message the composer answers

const excerpt = (s, n = 80) => (s.length > n ? s.slice(0, n - 1) + "…" : s);

// quoteText is what a reply shows of the message it answers, from the
// messages loaded ("a message" when it is not).
export function quoteText(c, messageId) {
  const t = c.msgs.get(messageId);
  if (!t) return "a message";
  if (t.deleted) return "a deleted message";
  const body = t.content || (t.attachments && t.attachments.length ? t.attachments.map((a) => a.name || "a file").join(", ") : "");
  return `${isMe(t.senderId) ? "you" : t.senderId}: ${excerpt(body)}`;
}

// renderQuote returns the quote of a reply: a button that scrolls to the
// message answered when it is loaded, else plain text.
export function renderQuote(c, m) {
  if (!m.replyTo) return null;
  const text = quoteText(c, m.replyTo);
  if (!c.msgs.has(m.replyTo)) return el("div", { class: "quote", "data-reply-to": m.replyTo }, el("span", { class: "sr-only" }, "In reply to "), "↪ ", text);
  return el("button", {
    type: "button", class: "quote", "data-reply-to": m.replyTo, "data-key": "quote-" + m.messageId,
    "aria-label": `In reply to ${text}. Show it`, onclick: () => jumpTo(m.replyTo),
  }, "↪ ", text);
}

// jumpTo scrolls to a loaded message, highlights it and moves the focus to
// it (for keyboard users).
export function jumpTo(messageId) {
  const li = document.querySelector(`#messages li[data-message="${CSS.escape(messageId)}"]`);
  if (!li) return;
  li.scrollIntoView({ block: "center", behavior: "smooth" });
  li.classList.remove("flash");
  void li.offsetWidth; // restart the animation
  li.classList.add("flash");
  li.setAttribute("tabindex", "-1");
  li.focus({ preventScroll: true });
}

// replyTo returns the messageId the composer answers in conversation c.
export const replyingTo = (c) => (c && reply.conv === c.id ? reply.messageId : null);

export function startReply(c, m) {
  reply.conv = c.id;
  reply.messageId = m.messageId;
  renderReplyBar();
  $("composer-input").focus();
}

export function cancelReply() {
  reply.conv = reply.messageId = null;
  renderReplyBar();
}

// renderReplyBar shows, above the composer, what the next message answers.
export function renderReplyBar() {
  const c = state.convs.get(state.active);
  const id = replyingTo(c);
  const bar = $("reply-bar");
  bar.hidden = !id;
  if (id) $("reply-text").textContent = `Replying to ${quoteText(c, id)}`;
}
