// Knowledge: the account's collections (create, edit, delete); `#/knowledge/<id>` is one
// collection's page (`collection.js`): its documents, uploads and the search tester.

import { del, get, patch, post } from "../api.js";
import { confirmAction, dialog, emptyState, h, number, replace, table, toast, when } from "../dom.js";
import { Form, busy, input, numberOrNull, select } from "../forms.js";
import collectionPage from "./collection.js";
import { clearOnInput, numberInput, showApiError } from "./form_parts.js";

export default {
  title: "Knowledge",
  render(ctx, params) {
    if (params[0]) return collectionPage(ctx, params[0], { edit: editCollection, remove: removeCollection });
    return collections(ctx);
  },
};

async function collections(ctx) {
  const body = h("div");
  const create = () => editCollection(null, (made) => ctx.navigate(`knowledge/${encodeURIComponent(made.id)}`));
  const page = h(
    "section",
    { class: "knowledge-page", "aria-labelledby": "knowledge-title" },
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        {},
        h("h1", { id: "knowledge-title" }, "Knowledge"),
        h("p", { class: "muted lede" }, "A collection holds documents, chunked and indexed for search. Gateways that name it in their knowledge settings ground their answers in it."),
      ),
      h("button", { type: "button", class: "primary", onclick: create }, "New collection"),
    ),
    body,
  );

  async function load() {
    const { data } = await get("/collections", undefined, { signal: ctx.signal });
    if (!data.length) {
      return replace(
        body,
        emptyState(
          "No collections yet",
          "Create a collection, drop your documents in (PDF, DOCX, HTML, Markdown, text, CSV, JSON), then choose it in a gateway's knowledge settings.",
          h("button", { type: "button", class: "primary", onclick: create }, "New collection"),
        ),
      );
    }
    replace(
      body,
      table(
        [
          { label: "Name", cell: (c) => h("a", { class: "strong-link", href: `#/knowledge/${encodeURIComponent(c.id)}` }, c.name) },
          { label: "Description", cell: (c) => (c.description ? h("span", { class: "clamp" }, c.description) : h("span", { class: "muted" }, "—")) },
          { label: "Chunks", class: "num", cell: (c) => number(c.chunks) },
          { label: "Embedding", cell: (c) => h("code", {}, c.embedding.model) },
          { label: "Created", cell: (c) => when(c.created_at) },
          {
            label: "Actions",
            cell: (c) =>
              h(
                "div",
                { class: "row nowrap" },
                h("button", { type: "button", class: "small", onclick: () => editCollection(c, load), "aria-label": `Edit ${c.name}` }, "Edit"),
                h("button", { type: "button", class: "small danger", onclick: () => removeCollection(c, load), "aria-label": `Delete ${c.name}` }, "Delete"),
              ),
          },
        ],
        data,
        { onRow: (c) => ctx.navigate(`knowledge/${encodeURIComponent(c.id)}`) },
      ),
    );
  }

  await load();
  return page;
}

/**
 * The dialog that creates a collection (`collection` null) or edits its name and description;
 * `done(collection)` after it is saved. A new collection embeds with the local model unless an
 * OpenAI-compatible embeddings endpoint is given.
 */
export function editCollection(collection, done) {
  const form = new Form();
  const name = input({ value: collection ? collection.name : "", maxlength: 200, required: true, autocomplete: "off" });
  const description = h("textarea", { class: "prose", maxlength: 10000, rows: 3 });
  description.value = collection ? collection.description : "";
  const fields = [
    form.general,
    form.field("name", "Name", name, { hint: "E.g. product-docs." }),
    form.field("description", "Description", description, { hint: "What it holds, for the people who choose it." }),
  ];
  let embedding = null;
  if (!collection) {
    embedding = embeddingFields(form);
    fields.push(embedding.element);
  }
  const save = h("button", { type: "submit", class: "primary" }, collection ? "Save" : "Create collection");
  const cancel = h("button", { type: "button" }, "Cancel");
  const element = h("form", { id: "collection-form", novalidate: true }, fields);
  save.setAttribute("form", "collection-form");
  const modal = dialog(collection ? `Edit ${collection.name}` : "New collection", element, [cancel, save]);
  cancel.addEventListener("click", () => modal.close());
  clearOnInput(form, element);
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(save, async () => {
      form.clear();
      try {
        let saved;
        if (collection) {
          saved = await patch(`/collections/${encodeURIComponent(collection.id)}`, { name: name.value.trim(), description: description.value });
        } else {
          const body = { name: name.value.trim(), description: description.value };
          const endpoint = embedding.value();
          if (endpoint) body.embedding = endpoint;
          saved = await post("/collections", body);
        }
        modal.close();
        toast(collection ? `${saved.name} saved.` : `${saved.name} created.`);
        await done(saved);
      } catch (err) {
        showApiError(form, err);
      }
    });
  });
  name.focus();
}

/** The embedder of a new collection: the local model, or an OpenAI-compatible endpoint. */
function embeddingFields(form) {
  const choice = select(
    [
      ["local", "Local: multilingual-e5-small, in the server (384 dimensions)"],
      ["endpoint", "An OpenAI-compatible /embeddings endpoint"],
    ],
    "local",
  );
  const baseUrl = input({ type: "url", placeholder: "https://api.openai.com/v1", autocomplete: "off" });
  const apiKey = input({ type: "password", autocomplete: "off", placeholder: "stored encrypted, never shown again" });
  const model = input({ placeholder: "text-embedding-3-small", autocomplete: "off" });
  const dimensions = numberInput(null, { min: 1, max: 8192, step: 1, inputmode: "numeric", placeholder: "1536" });
  const endpoint = h(
    "div",
    { class: "form-grid", hidden: true },
    form.field("embedding.base_url", "Base URL", baseUrl),
    form.field("embedding.api_key", "API key", apiKey),
    form.field("embedding.model", "Model", model),
    form.field("embedding.dimensions", "Dimensions", dimensions),
  );
  choice.addEventListener("change", () => (endpoint.hidden = choice.value !== "endpoint"));
  const element = h(
    "fieldset",
    {},
    h("legend", {}, "Embedding"),
    form.field("embedding", "Embedding model", choice, { hint: "Fixed for the collection's life; re-embedding moves it to another model later." }),
    endpoint,
  );
  return {
    element,
    value() {
      if (choice.value !== "endpoint") return null;
      const value = { base_url: baseUrl.value.trim(), model: model.value.trim() };
      if (numberOrNull(dimensions) !== null) value.dimensions = numberOrNull(dimensions);
      if (apiKey.value) value.api_key = apiKey.value;
      return value;
    },
  };
}

/**
 * Deletes a collection after confirming; while gateways use it the API answers 409
 * `collection_in_use` with their names, and a second confirmation deletes it with
 * `force=true`, taking it out of them. `done()` after it is gone.
 */
export async function removeCollection(collection, done) {
  const sure = await confirmAction(`Delete ${collection.name}?`, "Its documents and their chunks are deleted with it. This cannot be undone.");
  if (!sure) return;
  const path = `/collections/${encodeURIComponent(collection.id)}`;
  try {
    await del(path);
  } catch (err) {
    if (err.code !== "collection_in_use") return toast(err.message, "bad");
    const users = (err.body && err.body.error && err.body.error.gateways) || [];
    const names = users.map((g) => g.name || g.slug).join(", ");
    const force = await confirmAction(
      `${collection.name} is in use`,
      `Gateways ground their answers in it: ${names}. Delete it anyway? It is taken out of their knowledge settings first.`,
      "Delete anyway",
    );
    if (!force) return;
    try {
      await del(path, { query: { force: true } });
    } catch (again) {
      return toast(again.message, "bad");
    }
  }
  toast(`${collection.name} deleted.`);
  await done();
}
