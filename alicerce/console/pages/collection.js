// One collection: drop documents in and watch them index, the documents table, and the
// search tester. Statuses are polled (GET .../documents, once a second) while anything is
// queued or indexing, and the polling stops when the page is left.

import { ApiError, del, get, post } from "../api.js";
import { bytes, confirmAction, dialog, emptyState, h, number, replace, table, term, toast, when } from "../dom.js";
import { busy } from "../forms.js";
import { searchTester } from "./search_tester.js";
import { statusCell, typeName, uploadPanel } from "./uploads.js";

const POLL_MS = 1000;
const WORKING = new Set(["queued", "indexing"]);

/** The page of collection `id`; `actions.edit`/`actions.remove` are the collection dialogs. */
export default async function collectionPage(ctx, id, actions) {
  const base = `/collections/${encodeURIComponent(id)}`;
  let collection;
  try {
    collection = await get(base, undefined, { signal: ctx.signal });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      return emptyState("No such collection", "It may have been deleted.", h("a", { class: "button", href: "#/knowledge" }, "All collections"));
    }
    throw err;
  }
  const title = h("h1", { id: "collection-title" }, collection.name);
  const description = h("p", { class: "muted lede" });
  const facts = h("dl", { class: "details-grid collection-facts" });
  const reembed = h("div");
  const documentsBody = h("div");
  let documents = [];
  let shown = ""; // what the documents table shows, to redraw it only when it changed
  let timer = null;

  const uploads = uploadPanel(`${base}/documents`, {
    signal: ctx.signal,
    documentOf: (documentId) => documents.find((d) => d.id === documentId),
    onUploaded: () => poll(),
  });

  const page = h(
    "section",
    { class: "collection-page", "aria-labelledby": "collection-title" },
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("p", { class: "crumbs" }, h("a", { href: "#/knowledge" }, "Knowledge")), title, description),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", onclick: () => actions.edit(collection, (saved) => show(saved)) }, "Edit"),
        h("button", { type: "button", class: "danger", onclick: () => actions.remove(collection, () => ctx.navigate("knowledge")) }, "Delete collection"),
      ),
    ),
    facts,
    reembed,
    h("div", { class: "card" }, h("h2", {}, "Add documents"), uploads.element),
    h("div", { class: "card" }, h("h2", { id: "documents-title" }, "Documents"), documentsBody),
    h("div", { class: "card" }, h("h2", {}, "Search tester"), searchTester(`${base}/search`, ctx.signal)),
  );

  function show(value) {
    collection = value;
    replace(title, collection.name);
    replace(description, collection.description || "");
    description.hidden = !collection.description;
    const ready = documents.filter((d) => d.status === "ready").length;
    replace(
      facts,
      term("Documents", `${number(documents.length)} (${number(ready)} ready)`),
      term("Chunks", number(collection.chunks)),
      term("Embedding", h("code", {}, `${collection.embedding.model} · ${collection.embedding.dimensions} dimensions`)),
      term("Id", h("code", {}, collection.id)),
    );
    replace(reembed, reembedNotice(collection));
  }

  function reembedNotice(value) {
    const state = value.reembed;
    if (!state) return null;
    if (state.status === "failed") {
      const retry = h("button", { type: "button", class: "small" }, "Retry");
      retry.addEventListener("click", () =>
        busy(retry, async () => {
          try {
            await post(`${base}/reembed/retry`);
            await poll();
          } catch (err) {
            toast(err.message, "bad");
          }
        }),
      );
      return h("p", { class: "notice bad", role: "alert" }, `Re-embedding with ${state.embedding.model} failed: ${state.error || "no reason given"}. Searches still use the old vectors. `, retry);
    }
    return h("p", { class: "notice", role: "status" }, `Re-embedding with ${state.embedding.model}: ${state.status}. Searches use the old vectors until it is done.`);
  }

  function drawDocuments() {
    const state = JSON.stringify(documents);
    if (state === shown) return;
    shown = state;
    if (!documents.length) {
      return replace(documentsBody, h("p", { class: "muted" }, "No documents yet: drop files above, and they are searchable once they show ready."));
    }
    replace(
      documentsBody,
      table(
        [
          { label: "Name", cell: (d) => h("div", {}, h("strong", { class: "doc-name" }, d.name), h("div", { class: "hint" }, typeName(d.media_type))) },
          { label: "Status", cell: statusCell },
          { label: "Chunks", class: "num", cell: (d) => number(d.chunks) },
          { label: "Tokens", class: "num", cell: (d) => number(d.tokens) },
          { label: "Size", class: "num", cell: (d) => bytes(d.size_bytes) },
          { label: "Updated", cell: (d) => when(d.updated_at) },
          {
            label: "Actions",
            cell: (d) =>
              h(
                "div",
                { class: "row nowrap" },
                d.status === "failed" && h("button", { type: "button", class: "small", onclick: (event) => retry(d, event.currentTarget), "aria-label": `Retry ${d.name}` }, "Retry"),
                h("button", { type: "button", class: "small danger", onclick: () => remove(d), "aria-label": `Delete ${d.name}` }, "Delete"),
              ),
          },
        ],
        documents,
        { onRow: details, caption: `${documents.length} document${documents.length === 1 ? "" : "s"}; select one for its details.` },
      ),
    );
  }

  async function retry(document, button) {
    await busy(button, async () => {
      try {
        await post(`${base}/documents/${encodeURIComponent(document.id)}/retry`);
        toast(`${document.name} queued again.`);
        await poll();
      } catch (err) {
        toast(err.message, "bad");
      }
    });
  }

  async function remove(document) {
    const sure = await confirmAction(`Delete ${document.name}?`, "The document and all its chunks leave the collection at once; answers no longer cite it. This cannot be undone.");
    if (!sure) return;
    try {
      await del(`${base}/documents/${encodeURIComponent(document.id)}`);
      toast(`${document.name} deleted.`);
      await poll();
    } catch (err) {
      toast(err.message, "bad");
    }
  }

  function details(document) {
    const close = h("button", { type: "button", class: "primary" }, "Close");
    const grid = h(
      "dl",
      { class: "details-grid" },
      term("Status", statusCell(document)),
      term("Chunks", number(document.chunks)),
      term("Tokens", number(document.tokens)),
      term("Type", document.media_type ? `${typeName(document.media_type)} (${document.media_type})` : "—"),
      term("Size", bytes(document.size_bytes)),
      term("Source", document.source_url || "—"),
      term("Content hash", h("code", {}, document.content_hash || "—")),
      term("Id", h("code", {}, document.id)),
      term("Added", when(document.created_at)),
      term("Updated", when(document.updated_at)),
    );
    const metadata = document.metadata && Object.keys(document.metadata).length ? h("pre", { class: "quoted" }, JSON.stringify(document.metadata, null, 2)) : null;
    const modal = dialog(document.name, [grid, metadata && h("h3", {}, "Metadata"), metadata], [close]);
    close.addEventListener("click", () => modal.close());
    close.focus();
  }

  /** Reads the documents (and the collection, for its chunk count) and redraws. */
  async function poll() {
    clearTimeout(timer);
    if (ctx.signal.aborted) return;
    try {
      const [list, fresh] = await Promise.all([get(`${base}/documents`, undefined, { signal: ctx.signal }), get(base, undefined, { signal: ctx.signal })]);
      documents = list.data;
      drawDocuments();
      show(fresh);
      uploads.refresh();
    } catch (err) {
      if (err.name === "AbortError" || ctx.signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) return ctx.navigate("knowledge");
      // a lost connection: keep polling, it may come back
    }
    const busyNow = documents.some((d) => WORKING.has(d.status)) || uploads.active() || (collection.reembed && collection.reembed.status !== "failed");
    if (busyNow && !ctx.signal.aborted) timer = setTimeout(poll, POLL_MS);
  }

  ctx.signal.addEventListener("abort", () => clearTimeout(timer));
  await poll();
  return page;
}
