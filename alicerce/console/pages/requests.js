// Requests: the request log, filtered and paged; one request in full.
//
// Routes: `#/requests` (the newest), `#/requests/?gateway=…&key=…&status=…&from=…&to=…&limit=…
// &cursor=…` (filters and page in the address, so reload and back work), `#/requests/<id>`
// (one request: its line items, tokens, timing, error, attempts and metadata). `from` and `to`
// stay in the address as the local times typed; the API is sent them in UTC.

import { ApiError, get } from "../api.js";
import { badge, copyButton, emptyState, h, money, ms, number, statusTone, table, term, when } from "../dom.js";
import { Form, input, select } from "../forms.js";

const FILTERS = ["gateway", "key", "status", "from", "to", "limit"];
const LIMITS = [10, 25, 50, 100];
const STATUSES = [
  ["", "Any status"],
  ["ok", "Succeeded (below 400)"],
  ["error", "Failed (400 and above)"],
  ["2xx", "2xx"],
  ["4xx", "4xx"],
  ["5xx", "5xx"],
  ["refused", "Refused (401, 403, 429)"],
  ["429", "429 over a limit"],
  ["499", "499 client left"],
];

let lastList = "requests"; // the list a detail goes back to, filters and page included

export default {
  title: "Requests",
  render(ctx, params) {
    const first = params[0] || "";
    if (first && !first.startsWith("?")) return detail(ctx, first);
    return list(ctx, new URLSearchParams(first.slice(1)));
  },
};

/** The address of a list: `requests/?…` with what is set, in a fixed order. */
function listRoute(query) {
  const kept = new URLSearchParams();
  for (const name of [...FILTERS, "cursor"]) if (query.get(name)) kept.set(name, query.get(name));
  const text = kept.toString(); // ids, status words and local times: nothing to escape twice
  return text ? `requests/?${text}` : "requests";
}

/** A local `datetime-local` value as the API's RFC 3339 (UTC); an unreadable one as typed. */
function utc(value) {
  if (!value) return null;
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? value : moment.toISOString();
}

async function list(ctx, query) {
  const options = { signal: ctx.signal };
  const limit = LIMITS.includes(Number(query.get("limit"))) ? Number(query.get("limit")) : 50;
  const [gateways, keys] = await Promise.all([get("/gateways", undefined, options), get("/keys", undefined, options)]);
  const names = { gateway: byId(gateways.data), key: byId(keys.data) };
  const form = new Form();
  const controls = {
    gateway: select(choices("All gateways", gateways.data, query.get("gateway")), query.get("gateway") || ""),
    key: select(choices("All keys", keys.data, query.get("key")), query.get("key") || ""),
    status: select(STATUSES, query.get("status") || ""),
    from: input({ type: "datetime-local", value: query.get("from") || "", step: 1 }),
    to: input({ type: "datetime-local", value: query.get("to") || "", step: 1 }),
    limit: select(LIMITS.map((n) => [n, `${n} a page`]), limit),
  };
  const apply = h("button", { type: "submit", class: "primary" }, "Apply");
  const clear = h("button", { type: "button", onclick: () => ctx.navigate("requests") }, "Clear");
  const filters = h(
    "form",
    { class: "card requests-filters", "aria-label": "Filters" },
    form.general,
    h(
      "div",
      { class: "requests-filter-grid" },
      form.field("gateway", "Gateway", controls.gateway),
      form.field("key", "Key", controls.key),
      form.field("status", "Status", controls.status),
      time(form.field("from", "From", controls.from, { hint: "your local time" })),
      time(form.field("to", "Until", controls.to, { hint: "not included" })),
      form.field("limit", "Show", controls.limit),
    ),
    h("div", { class: "row requests-filter-actions" }, apply, clear),
  );
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) if (controls[name].value) next.set(name, controls[name].value);
    if (next.get("limit") === "50") next.delete("limit");
    ctx.navigate(listRoute(next));
  });

  lastList = listRoute(query);
  const body = h("div", { class: "requests-results" });
  const page = h(
    "section",
    { "aria-labelledby": "requests-title" },
    h("div", { class: "page-head" }, h("h1", { id: "requests-title" }, "Requests")),
    filters,
    body,
  );
  let answer;
  try {
    answer = await get(
      "/requests",
      {
        gateway: query.get("gateway"),
        key: query.get("key"),
        status: query.get("status"),
        from: utc(query.get("from")),
        to: utc(query.get("to")),
        limit,
        cursor: query.get("cursor"),
      },
      options,
    );
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401 || ![400, 404].includes(err.status)) throw err;
    form.showError(err);
    return page;
  }
  const filtered = FILTERS.some((name) => name !== "limit" && query.get(name));
  if (!answer.data.length) {
    body.append(
      query.get("cursor")
        ? emptyState("No more requests", "That was the last page.", firstPageLink(ctx, query))
        : filtered
          ? emptyState("No request matches", "Nothing in the log has all of these. Loosen a filter, or clear them.", h("button", { type: "button", onclick: () => ctx.navigate("requests") }, "Clear the filters"))
          : emptyState(
              "No requests yet",
              "Every request your gateways answer is listed here, with its tokens, cost, timing and any error. Create a gateway and call it, from the Playground or with any OpenAI client.",
              h("div", { class: "row requests-empty-actions" }, h("a", { class: "button primary", href: "#/gateways" }, "Gateways"), h("a", { class: "button", href: "#/playground" }, "Playground")),
            ),
    );
    return page;
  }
  const open = (row) => ctx.navigate(`requests/${encodeURIComponent(row.id)}`);
  const rows = table(
    [
        { label: "Time", cell: (row) => h("a", { href: `#/requests/${encodeURIComponent(row.id)}` }, when(row.created_at)) },
        { label: "Status", cell: (row) => statusBadge(row) },
        { label: "Gateway", cell: (row) => named(names.gateway, row.gateway_id, "—") },
        { label: "Model", cell: (row) => (row.model ? h("code", {}, row.model) : "—") },
        { label: "Key", cell: (row) => named(names.key, row.key_id, "—") },
        { label: "Tokens", class: "num", cell: (row) => `${number(row.usage.prompt_tokens)} → ${number(row.usage.completion_tokens)}` },
        { label: "Latency", class: "num", cell: (row) => ms(row.latency_ms) },
        { label: "Cost", class: "num", cell: (row) => money(row.amount, row.currency) },
      ],
      answer.data,
      { onRow: open, caption: pageCaption(answer, query) },
  );
  // A click anywhere on a row opens it; from the keyboard, its link does (one stop a row).
  for (const row of rows.querySelectorAll("tr.clickable")) row.removeAttribute("tabindex");
  body.append(
    rows,
    h(
      "div",
      { class: "row requests-pager" },
      query.get("cursor") && firstPageLink(ctx, query),
      answer.has_more &&
        h(
          "button",
          {
            type: "button",
            class: "primary",
            onclick: () => {
              const next = new URLSearchParams(query);
              next.set("cursor", answer.next_cursor);
              ctx.navigate(listRoute(next));
            },
          },
          "Next page",
        ),
    ),
  );
  return page;
}

function time(field) {
  field.classList.add("requests-time");
  return field;
}

function pageCaption(answer, query) {
  const count = answer.data.length;
  const what = `${number(count)} request${count === 1 ? "" : "s"}, newest first`;
  return query.get("cursor") ? `${what} (a later page)` : what;
}

function firstPageLink(ctx, query) {
  const first = new URLSearchParams(query);
  first.delete("cursor");
  return h("button", { type: "button", onclick: () => ctx.navigate(listRoute(first)) }, "First page");
}

function byId(items) {
  return new Map(items.map((item) => [item.id, item.name]));
}

/** Options for a gateway or key filter; one the address names that is gone keeps its id. */
function choices(all, items, current) {
  const options = [["", all], ...items.map((item) => [item.id, item.name])];
  if (current && !items.some((item) => item.id === current)) options.push([current, current]);
  return options;
}

function named(names, id, none) {
  if (!id) return h("span", { class: "muted" }, none);
  return names.has(id) ? names.get(id) : h("span", { class: "muted", title: id }, "deleted");
}

function statusBadge(row) {
  const refused = [401, 403, 429].includes(row.status);
  return badge(String(row.status), refused ? "pending" : statusTone(row.status));
}

// -- one request -------------------------------------------------------------------------------

async function detail(ctx, id) {
  const options = { signal: ctx.signal };
  const missing = (err) => {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  };
  const [record, gateways, keys] = await Promise.all([
    get(`/requests/${encodeURIComponent(id)}`, undefined, options).catch(missing),
    get("/gateways", undefined, options),
    get("/keys", undefined, options),
  ]);
  if (!record) {
    return emptyState("No such request", "This account's request log has no request with that id.", h("a", { class: "button", href: `#/${lastList}` }, "Back to the requests"));
  }
  const gatewayName = byId(gateways.data).get(record.gateway_id);
  const keyName = byId(keys.data).get(record.key_id);
  const usage = record.usage;
  return h(
    "section",
    { "aria-labelledby": "request-title", class: "request-detail" },
    h("p", {}, h("a", { href: `#/${lastList}` }, "← Requests")),
    h(
      "div",
      { class: "page-head" },
      h("h1", { id: "request-title" }, "Request ", statusBadge(record)),
      h("div", { class: "row request-id" }, h("code", {}, record.id), copyButton(record.id, "Copy id")),
    ),
    h(
      "div",
      { class: "stats" },
      fact("Cost", money(record.amount, record.currency)),
      fact("Latency", ms(record.latency_ms)),
      fact("First token", record.stream ? ms(record.time_to_first_token_ms) : "not streamed"),
      fact("Tokens", `${number(usage.prompt_tokens)} → ${number(usage.completion_tokens)}`),
    ),
    record.error &&
      h(
        "div",
        { class: "card request-error", role: "note" },
        h("h2", {}, "Error"),
        h("p", {}, h("code", {}, record.error.type || "error")),
        h("p", { class: "message" }, record.error.message || ""),
      ),
    h(
      "div",
      { class: "columns" },
      section(
        "Summary",
        h(
          "dl",
          { class: "details-grid" },
          term("When", when(record.created_at)),
          term("Status", String(record.status)),
          term("Endpoint", h("code", {}, record.endpoint)),
          term("Gateway", record.gateway_id ? (gatewayName ? h("a", { href: `#/gateways/${encodeURIComponent(record.gateway_id)}` }, gatewayName) : deleted(record.gateway_id)) : "—"),
          term("Model", record.model ? h("code", {}, record.model) : "—"),
          term("Key", record.key_id ? keyName || deleted(record.key_id) : "—"),
          term("Streamed", record.stream ? "yes" : "no"),
        ),
      ),
      section(
        "Tokens",
        h(
          "dl",
          { class: "details-grid" },
          term("Prompt", number(usage.prompt_tokens)),
          term("of them cached", number(usage.cached_tokens)),
          term("Completion", number(usage.completion_tokens)),
          term("Counted by", usage.estimated ? "Alicerce's tokenizer (the upstream reported none)" : "the upstream"),
        ),
      ),
    ),
    section("Line items", lineItems(record)),
    record.attempts.length > 0 && section("Failed attempts", attempts(record.attempts)),
    section("Metadata", metadata(record.metadata)),
  );
}

function fact(label, value) {
  return h("div", { class: "card" }, h("p", { class: "muted" }, label), h("p", { class: "stat" }, value));
}

function section(title, body) {
  return h("section", { class: "card request-section" }, h("h2", {}, title), body);
}


function deleted(id) {
  return h("span", {}, h("span", { class: "muted" }, "deleted "), h("code", {}, id));
}

function lineItems(record) {
  if (!record.line_items.length) return h("p", { class: "muted" }, "Nothing was billed: no model was called, or it answered no tokens.");
  const wrap = table(
    [
      { label: "SKU", cell: (item) => h("code", {}, item.sku) },
      { label: "Quantity", class: "num", cell: (item) => number(item.quantity) },
      { label: "Unit price", class: "num", cell: (item) => money(item.unit_price, record.currency) },
      { label: "Amount", class: "num", cell: (item) => money(item.amount, record.currency) },
      { label: "Description", cell: (item) => item.description },
    ],
    record.line_items,
  );
  wrap.querySelector("table").append(
    h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: "3" }, "Total"), h("td", { class: "num" }, money(record.amount, record.currency)), h("td", {}))),
  );
  return wrap;
}

function attempts(items) {
  return table(
    [
      { label: "Upstream", cell: (a) => h("code", {}, a.upstream || "—") },
      { label: "Try", class: "num", cell: (a) => String(a.attempt ?? "—") },
      { label: "Status", cell: (a) => (a.status ? badge(String(a.status), statusTone(a.status)) : "—") },
      { label: "Error", cell: (a) => (a.error ? [h("code", {}, a.error.code || a.error.type || "error"), " ", a.error.message || ""] : "—") },
      { label: "Then", cell: (a) => (a.then === "fallback" && a.next ? ["fallback to ", h("code", {}, a.next)] : a.then || "—") },
    ],
    items,
  );
}

function metadata(values) {
  const entries = Object.entries(values || {});
  if (!entries.length) return h("p", { class: "muted" }, "None: a request's metadata field is shown here, and is a filter of the API (metadata.NAME=value).");
  return table(
    [
      { label: "Name", cell: ([name]) => h("code", {}, name) },
      { label: "Value", cell: ([, value]) => (typeof value === "string" ? value : JSON.stringify(value)) },
    ],
    entries,
  );
}
