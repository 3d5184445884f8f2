// Files: choosing attachments in the composer, uploading them
// (POST /files, docs/protocol.md section 7) with progress, and showing the
// attachments of a message. Downloads are fetched with the token in the
// Authorization header into blob URLs, so that the token never appears in
// a URL (history, logs, a copied link); an <img> gets the blob URL.
import { $, el, fmtSize, keepingFocus } from "./util.js";
import { state } from "./state.js";

export const MAX_ATTACHMENTS = 10; // per message
const INLINE = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

let chosen = []; // the Files chosen for the next message, {id, file}

// choose adds the files picked in the file input.
function choose(files) {
  for (const file of files) {
    if (chosen.length >= MAX_ATTACHMENTS) break;
    chosen.push({ id: Math.random().toString(36).slice(2), file });
  }
  renderChosen();
}

// takeChosen empties the composer's attachments and returns their Files.
export function takeChosen() {
  const files = chosen.map((x) => x.file);
  chosen = [];
  renderChosen();
  return files;
}

// putBack returns files to the composer (a send that failed).
export function putBack(files) {
  chosen = files.map((file) => ({ id: Math.random().toString(36).slice(2), file })).concat(chosen).slice(0, MAX_ATTACHMENTS);
  renderChosen();
}

export const hasChosen = () => chosen.length > 0;

function renderChosen() {
  const ul = $("chosen");
  ul.hidden = chosen.length === 0;
  keepingFocus(() => ul.replaceChildren(...chosen.map((x) => el("li", { class: "chip" },
    el("span", { class: "chip-name" }, `${x.file.name} (${fmtSize(x.file.size)})`),
    el("button", {
      type: "button", class: "link", "aria-label": `Remove ${x.file.name}`, "data-key": "unchoose-" + x.id,
      onclick: () => { chosen = chosen.filter((y) => y !== x); renderChosen(); $("attach-button").focus(); },
    }, "×")))));
  $("attach-button").disabled = chosen.length >= MAX_ATTACHMENTS;
}

// setupComposer wires the attach button (a real button, so that it takes
// the keyboard focus) to the hidden file input.
// Files dropped on the conversation or pasted into the message box are
// chosen too.
export function setupComposer() {
  const input = $("attach-input");
  $("attach-button").addEventListener("click", () => input.click());
  input.addEventListener("change", () => { choose(input.files); input.value = ""; });
  const pane = $("conversation");
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  pane.addEventListener("dragover", (e) => { if (hasFiles(e)) { e.preventDefault(); pane.classList.add("dropping"); } });
  pane.addEventListener("dragleave", (e) => { if (e.target === pane) pane.classList.remove("dropping"); });
  pane.addEventListener("drop", (e) => {
    pane.classList.remove("dropping");
    if (!hasFiles(e)) return;
    e.preventDefault();
    choose(e.dataTransfer.files);
  });
  $("composer-input").addEventListener("paste", (e) => {
    const files = e.clipboardData ? [...e.clipboardData.files] : [];
    if (files.length && !e.clipboardData.types.includes("text/plain")) { e.preventDefault(); choose(files); }
  });
  renderChosen();
}

// safeName is a file name the server takes: no control characters or
// slashes, at most 255 bytes of UTF-8.
function safeName(name) {
  let s = name.replace(/[\u0000-\u001f\u007f/\\]/g, "_");
  const enc = new TextEncoder();
  while (enc.encode(s).length > 255) s = s.slice(0, -1);
  return s;
}

// UploadError is an upload the server (or the network) refused.
class UploadError extends Error {}

function uploadError(file, xhr) {
  let msg = "";
  try { msg = JSON.parse(xhr.responseText).message || ""; } catch { /* not JSON */ }
  switch (xhr.status) {
    case 413: return new UploadError(`${file.name} is too large (${fmtSize(file.size)})${msg ? `: ${msg}` : ""}`);
    case 429: {
      const s = Number(xhr.getResponseHeader("Retry-After")) || 0;
      return new UploadError(`Too many uploads: try ${file.name} again${s ? ` in ${s} s` : " later"}`);
    }
    case 404: return new UploadError(`${file.name}: this conversation is not found (were you removed from it?)`);
    case 401: return new UploadError(`${file.name}: the server refused your token`);
    default: return new UploadError(`${file.name} was not uploaded: ${msg || `error ${xhr.status}`}`);
  }
}

// upload sends one file to conversation convId and resolves with its
// fileId; onProgress gets the fraction sent. XMLHttpRequest, not fetch:
// fetch reports no upload progress.
export function upload(convId, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const name = safeName(file.name);
    xhr.open("POST", `/files?conversationId=${encodeURIComponent(convId)}${name ? `&name=${encodeURIComponent(name)}` : ""}`);
    xhr.setRequestHeader("Authorization", "Bearer " + state.conn.token);
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status !== 201) return reject(uploadError(file, xhr));
      try { resolve(JSON.parse(xhr.responseText).fileId); } catch { reject(new UploadError(`${file.name}: the server's reply was not understood`)); }
    };
    xhr.onerror = () => reject(new UploadError(`${file.name} was not uploaded: the connection failed`));
    xhr.send(file);
  });
}

// uploadAll uploads files one after the other, reporting progress as text.
export async function uploadAll(convId, files, report) {
  const ids = [];
  for (const [i, file] of files.entries()) {
    const of = files.length > 1 ? ` (${i + 1} of ${files.length})` : "";
    report(`uploading ${file.name}${of}…`);
    ids.push(await upload(convId, file, (f) => report(`uploading ${file.name}${of}: ${Math.round(f * 100)}%`)));
  }
  return ids;
}

const blobs = new Map(); // fileId -> Promise of a blob URL

// blobURL fetches a file with the token in a header, once per fileId.
function blobURL(fileId) {
  let p = blobs.get(fileId);
  if (!p) {
    p = fetch(`/files/${encodeURIComponent(fileId)}`, { headers: { Authorization: "Bearer " + state.conn.token }, cache: "no-store" })
      .then(async (r) => {
        if (!r.ok) throw new Error(r.status === 404 ? "no longer available" : `error ${r.status}`);
        return URL.createObjectURL(await r.blob());
      });
    p.catch(() => blobs.delete(fileId)); // the next render tries again
    blobs.set(fileId, p);
  }
  return p;
}

// forgetFiles frees the blob URLs (signing out).
export function forgetFiles() {
  for (const p of blobs.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
  blobs.clear();
  chosen = [];
}

// renderAttachments returns a message's attachments: images inline as
// thumbnails (a link to the full image), other files as download links.
export function renderAttachments(atts) {
  if (!atts || !atts.length) return null;
  return el("ul", { class: "attachments" }, ...atts.map((a) => el("li", {}, INLINE.has(a.contentType) ? image(a) : download(a))));
}

function image(a) {
  const img = el("img", { alt: a.name || "image", "data-file": a.fileId });
  const link = el("a", { class: "thumb", href: "#", title: `${a.name} (${fmtSize(a.size)})`, "aria-label": `Image ${a.name}, open full size` }, img);
  blobURL(a.fileId).then((u) => { img.src = u; link.href = u; link.target = "_blank"; },
    (e) => { link.replaceWith(el("span", { class: "file-error" }, `${a.name}: ${e.message}`)); });
  return link;
}

function download(a) {
  const link = el("a", { class: "file", href: "#", "data-file": a.fileId, title: `Download ${a.name}` },
    el("span", { "aria-hidden": "true" }, "📄 "), a.name || "file", el("span", { class: "size" }, ` (${fmtSize(a.size)})`));
  link.addEventListener("click", (e) => { e.preventDefault(); save(a, link); });
  return link;
}

// save downloads a through a temporary link with the download attribute.
async function save(a, link) {
  link.classList.add("busy");
  try {
    const u = await blobURL(a.fileId);
    const tmp = el("a", { href: u, download: a.name || "file", hidden: true });
    document.body.append(tmp);
    tmp.click();
    tmp.remove();
  } catch (e) {
    link.after(el("span", { class: "file-error" }, ` ${e.message}`));
  } finally {
    link.classList.remove("busy");
  }
}
