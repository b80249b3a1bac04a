// Dropping many files into a collection: each file its own row with its upload progress,
// then the indexing status of the document it became (queued → indexing → ready, or failed
// with its reason), as the collection page's polling learns it.

import { upload } from "../api.js";
import { badge, bytes, h, number, replace, statusTone } from "../dom.js";

const PARALLEL = 3; // uploads at once: enough to keep the link busy, few enough to show progress
const ACCEPT = ".txt,.md,.markdown,.html,.htm,.pdf,.docx,.json,.csv";

/**
 * The drop zone and the list of this page's uploads. `documentOf(id)` is the latest known
 * state of a document; `onUploaded()` is called as each upload ends (to poll at once).
 * Returns `{element, refresh(), active()}`: `refresh` redraws the statuses, `active` says
 * whether any file is still waiting or uploading.
 */
export function uploadPanel(path, { signal, documentOf, onUploaded }) {
  const entries = [];
  const waiting = [];
  let running = 0;

  const picker = h("input", { type: "file", multiple: true, accept: ACCEPT, hidden: true, "aria-label": "Files to upload" });
  const choose = h("button", { type: "button", class: "small", onclick: () => picker.click() }, "Choose files");
  const zone = h(
    "div",
    { class: "dropzone", "data-dropzone": "" },
    h("p", {}, h("strong", {}, "Drop files here"), " or ", choose, picker),
    h("p", { class: "hint" }, "PDF, DOCX, HTML, Markdown, text, CSV and JSON; many at once. The same content twice is kept once."),
  );
  const list = h("ul", { class: "upload-list", "aria-label": "Uploads", "aria-live": "polite", tabindex: 0 });
  const clear = h("button", { type: "button", class: "small", hidden: true }, "Clear finished");

  picker.addEventListener("change", () => {
    add([...picker.files]);
    picker.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    add([...event.dataTransfer.files]);
  });
  clear.addEventListener("click", () => {
    for (const entry of entries.filter(finished)) {
      entry.row.remove();
      entries.splice(entries.indexOf(entry), 1);
    }
    clear.hidden = !entries.some(finished);
  });

  function add(files) {
    for (const file of files) {
      const progress = h("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
      const state = h("div", { class: "upload-state" }, "waiting");
      const row = h("li", { class: "upload", "data-file": file.name }, h("div", { class: "row upload-head" }, h("strong", { class: "doc-name" }, file.name), h("span", { class: "muted" }, bytes(file.size))), progress, state);
      const entry = { file, row, progress, state, phase: "waiting", document: null, error: null, existed: false };
      entries.push(entry);
      waiting.push(entry);
      list.prepend(row);
    }
    pump();
  }

  function pump() {
    while (running < PARALLEL && waiting.length) send(waiting.shift());
  }

  async function send(entry) {
    running += 1;
    entry.phase = "uploading";
    replace(entry.state, "uploading 0%");
    try {
      const { status, body } = await upload(path, entry.file, {
        signal,
        onProgress: (share) => {
          entry.progress.value = share;
          replace(entry.state, `uploading ${Math.round(share * 100)}%`);
        },
      });
      entry.phase = "uploaded";
      entry.document = body;
      entry.existed = status === 200;
      entry.progress.value = 1;
    } catch (err) {
      if (err.name === "AbortError") return;
      entry.phase = "refused";
      entry.error = err.message;
    } finally {
      running -= 1;
    }
    draw(entry);
    pump();
    onUploaded();
  }

  function finished(entry) {
    if (entry.phase === "refused") return true;
    if (entry.phase !== "uploaded") return false;
    const document = documentOf(entry.document.id) || entry.document;
    return document.status === "ready" || document.status === "failed" || entry.existed;
  }

  function draw(entry) {
    if (entry.phase === "refused") {
      entry.row.dataset.status = "refused";
      entry.progress.hidden = true;
      return replace(entry.state, h("div", { class: "field-error", role: "alert" }, `Not uploaded: ${entry.error}`));
    }
    if (entry.phase !== "uploaded") return;
    const document = documentOf(entry.document.id) || entry.document;
    entry.row.dataset.status = document.status;
    entry.progress.hidden = true;
    replace(
      entry.state,
      h(
        "div",
        { class: "row" },
        statusCell(document),
        entry.existed && h("span", { class: "muted" }, "already in the collection"),
        document.status === "ready" && h("span", { class: "muted" }, `${number(document.chunks)} chunk${document.chunks === 1 ? "" : "s"}`),
      ),
    );
  }

  return {
    element: h("div", { class: "stack" }, zone, h("div", { class: "row upload-bar" }, clear), list),
    refresh() {
      for (const entry of entries) draw(entry);
      clear.hidden = !entries.some(finished);
    },
    active: () => running > 0 || waiting.length > 0,
  };
}

/** A document's status; a failed one says why. */
export function statusCell(document) {
  const label = { queued: "queued", indexing: "indexing…", ready: "ready", failed: "failed" }[document.status] || document.status;
  return h(
    "div",
    { class: "doc-status", "data-status": document.status },
    badge(label, statusTone(document.status)),
    document.status === "failed" && document.error && h("div", { class: "field-error" }, document.error),
  );
}

const TYPES = {
  "application/pdf": "PDF",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX",
  "text/html": "HTML",
  "text/markdown": "Markdown",
  "text/plain": "Text",
  "text/csv": "CSV",
  "application/json": "JSON",
};

/** A document's type as people name it ("PDF", "DOCX"), else its media type. */
export function typeName(mediaType) {
  const bare = (mediaType || "").split(";")[0].trim();
  return TYPES[bare] || bare || "—";
}
