// What the playground shows under an answer, that a plain chat UI cannot: the priced line
// items, the knowledge chunks the model read, the server-side functions it ran, how `@auto`
// routed, and the timing. Each is a <details> whose summary line says the headline.
//
// An answer is the plain object the column fills while it streams:
// `{gateway, text, status, requestId, served: {model, complexity, routingFallback},
//   upstreamModel, usage, context, timing: {start, firstToken, end}}`.
// Everything the model, a function or a document wrote is put in text nodes (`h`).

import { get } from "../api.js";
import { copyButton, h, ms, number, replace, table, uid } from "../dom.js";

/** The sections under a finished (or stopped) answer. `setServer(record)` adds what the
 * request log's record says once it is written (null: not found): the server's timing, and for
 * a stopped answer, which never got its usage chunk, its tokens and line items. */
export function answerDetails(answer) {
  const context = answer.context || {};
  const timing = timingSection(answer);
  const items = context.generated_usage || [];
  const unbilled = answer.gateway.endpoint ? "This gateway calls its own endpoint: its tokens are not billed, only knowledge searches would be." : null;
  let cost = costSection(items, context.currency, null, unbilled);
  const element = h(
    "div",
    { class: "pg-inspect" },
    cost,
    knowledgeSection(context),
    functionsSection(context),
    routingSection(answer),
    timing.element,
  );
  function setServer(record) {
    timing.setServer(record);
    // A stopped answer never got its usage chunk: the request log has what was billed.
    if (!items.length && record && record.line_items && record.line_items.length) {
      const billed = costSection(record.line_items, record.currency, "From the request log: what was billed before the answer stopped.");
      billed.open = cost.open;
      cost.replaceWith(billed);
      cost = billed;
    }
  }
  return { element, setServer };
}

function section(name, headline, ...body) {
  return h(
    "details",
    { class: "pg-section", "data-section": name.toLowerCase() },
    h("summary", {}, h("span", { class: "pg-section-name" }, name), h("span", { class: "pg-section-value" }, headline)),
    h("div", { class: "pg-section-body" }, body),
  );
}

// -- cost -----------------------------------------------------------------------------------

function costSection(items, currency = "USD", note = null, empty = null) {
  if (!items.length) return section("Cost", empty ? "not billed" : "—", h("p", { class: "muted" }, empty || "No line items came with this answer."));
  const total = sumDecimals(items.map((item) => item.amount));
  const headings = ["SKU", "Quantity", `Unit price (${currency})`, `Amount (${currency})`];
  const costs = h(
    "div",
    { class: "table-wrap pg-cost" },
    h(
      "table",
      {},
      h("caption", {}, "Line items, in the order they were consumed"),
      h("thead", {}, h("tr", {}, headings.map((label, i) => h("th", { scope: "col", class: i ? "num" : null }, label)))),
      h(
        "tbody",
        {},
        items.map((item) =>
          h(
            "tr",
            {},
            h("td", {}, h("code", { class: "pg-sku" }, breakable(item.sku)), h("div", { class: "hint" }, item.description)),
            h("td", { class: "num", "data-label": headings[1] }, number(item.quantity)),
            h("td", { class: "num", "data-label": headings[2] }, decimal(item.unit_price)),
            h("td", { class: "num", "data-label": headings[3] }, decimal(item.amount)),
          ),
        ),
      ),
      h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: "3" }, "Total"), h("td", { class: "num", "data-total": "" }, `${total} ${currency}`))),
    ),
  );
  const count = items.length === 1 ? "1 line item" : `${items.length} line items`;
  return section("Cost", `${total} ${currency} · ${count}`, note && h("p", { class: "hint" }, note), costs);
}

/** A dotted name that may wrap after its dots (`inference.chat_completions.in`). */
function breakable(name) {
  return String(name)
    .split(".")
    .map((part, i) => (i ? [".", h("wbr"), part] : part));
}

/** A JSON number as the plain decimal the server wrote (`1.25e-7` is `0.000000125`). */
export function decimal(value) {
  const text = String(Number(value || 0));
  const match = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!match) return text;
  const [, sign, lead, fraction = "", power] = match;
  const exponent = Number(power);
  const digits = lead + fraction;
  if (exponent < 0) return `${sign}0.${"0".repeat(-exponent - 1)}${digits}`;
  return sign + digits.padEnd(exponent + 1, "0");
}

/** The exact sum of decimal amounts (floating point would drift in the last digits). */
export function sumDecimals(values) {
  const parts = values.map((value) => {
    const [whole, fraction = ""] = decimal(value).replace("-", "").split(".");
    return { negative: String(value).startsWith("-"), whole, fraction };
  });
  const scale = Math.max(0, ...parts.map((part) => part.fraction.length));
  let sum = 0n;
  for (const part of parts) {
    const units = BigInt(part.whole + part.fraction.padEnd(scale, "0"));
    sum += part.negative ? -units : units;
  }
  const negative = sum < 0n;
  const digits = (negative ? -sum : sum).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

// -- knowledge ------------------------------------------------------------------------------

function knowledgeSection(context) {
  const chunks = context.knowledge || [];
  const searches = context.knowledge_searches || [];
  if (!chunks.length && !searches.length) {
    return section("Knowledge", "none", h("p", { class: "muted" }, "Nothing was searched: this gateway's knowledge strategy is none, or it chose not to search."));
  }
  const names = [...new Set(chunks.map((chunk) => chunk.document_name))];
  const headline = chunks.length
    ? `${chunks.length === 1 ? "1 chunk" : `${chunks.length} chunks`} · ${names.join(", ")}`
    : "searched, nothing given";
  return section(
    "Knowledge",
    headline,
    chunks.length ? h("ol", { class: "pg-citations", "aria-label": "Chunks the model was given" }, chunks.map(citation)) : h("p", { class: "muted" }, "No chunk was given to the model."),
    searches.map(searchSummary),
  );
}

function citation(chunk) {
  const textId = uid("chunk");
  const label = (verb) => `${verb} text: ${chunk.document_name}, chunk ${chunk.position + 1}`;
  const text = h("div", { class: "pg-chunk", id: textId, hidden: true });
  const toggle = h("button", { type: "button", class: "small", "aria-expanded": "false", "aria-controls": textId, "aria-label": label("Show") }, "Show text");
  let loaded = false;
  toggle.addEventListener("click", async () => {
    const open = toggle.getAttribute("aria-expanded") === "true";
    if (open) {
      text.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      toggle.textContent = "Show text";
      toggle.setAttribute("aria-label", label("Show"));
      return;
    }
    text.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    toggle.textContent = "Hide text";
    toggle.setAttribute("aria-label", label("Hide"));
    if (loaded) return;
    replace(text, h("p", { class: "muted" }, "Loading the chunk…"));
    try {
      const whole = await get(`/collections/${encodeURIComponent(chunk.collection_id)}/documents/${encodeURIComponent(chunk.document_id)}/chunks/${encodeURIComponent(chunk.chunk_id)}`);
      loaded = true;
      replace(
        text,
        h("blockquote", { class: "pg-chunk-text" }, whole.text),
        h("p", { class: "hint" }, `Chunk ${whole.position + 1} of ${whole.document ? whole.document.chunks : "?"} · ${number(whole.tokens)} tokens`),
      );
    } catch (err) {
      // The citation carries the passage the model read (up to 2,000 characters): show that.
      replace(text, h("blockquote", { class: "pg-chunk-text" }, chunk.text), h("p", { class: "field-error" }, `The whole chunk could not be fetched: ${err.message}`));
    }
  });
  return h(
    "li",
    { class: "pg-citation" },
    h(
      "div",
      { class: "pg-citation-head" },
      h("strong", {}, chunk.document_name),
      chunk.headings && chunk.headings.length ? h("span", { class: "muted" }, chunk.headings.join(" › ")) : null,
      h("span", { class: "badge", title: "The score that ranked it" }, `score ${chunk.score.toFixed(3)}`),
      chunk.low_confidence ? h("span", { class: "badge pending" }, "low confidence") : null,
      toggle,
    ),
    text,
  );
}

const REASONS = { below_min_score: "below min_score", beyond_top_k: "beyond top_k", low_confidence_limit: "past the low-confidence limit" };

function searchSummary(search) {
  const hits = search.hits || [];
  const used = hits.filter((hit) => hit.used).length;
  const facts = [search.strategy, search.mode, `top_k ${search.top_k}`, `min_score ${search.min_score}`];
  return h(
    "div",
    { class: "pg-search" },
    h("p", {}, "Searched ", h("q", {}, search.query), ` · ${facts.join(" · ")} · `, h("span", { class: "badge" }, search.outcome), ` · ${used} of ${hits.length} found given`),
    search.context_query ? h("p", { class: "hint" }, `With the conversation (weight ${search.context_weight}): `, h("q", {}, search.context_query)) : null,
    search.error ? h("p", { class: "field-error" }, search.error) : null,
    hits.length
      ? table(
          [
            { label: "Document", cell: (hit) => hit.document_name },
            { label: "Score", class: "num", cell: (hit) => hit.score.toFixed(3) },
            { label: "Given", cell: (hit) => (hit.used ? h("span", { class: "badge good" }, hit.low_confidence ? "yes, low confidence" : "yes") : REASONS[hit.reason] || hit.reason || "no") },
          ],
          hits,
        )
      : null,
  );
}

// -- functions ------------------------------------------------------------------------------

function functionsSection(context) {
  const calls = context.runned_functions || [];
  if (!calls.length) return section("Functions", "none", h("p", { class: "muted" }, "No server-side function ran for this answer."));
  const names = [...new Set(calls.map((call) => call.name))];
  return section(
    "Functions",
    `${calls.length === 1 ? "1 call" : `${calls.length} calls`} · ${names.join(", ")}`,
    h(
      "ol",
      { class: "pg-calls" },
      calls.map((call) =>
        h(
          "li",
          { class: "pg-call" },
          h("div", { class: "pg-citation-head" }, h("code", {}, call.name), h("span", { class: "muted" }, ms(call.duration_ms)), call.error ? h("span", { class: "badge bad" }, "error") : h("span", { class: "badge good" }, "ok")),
          h("div", { class: "pg-label" }, "Arguments"),
          h("pre", { class: "pg-code" }, pretty(call.arguments)),
          h("div", { class: "pg-label" }, call.error ? "Error" : "Output"),
          h("pre", { class: "pg-code" }, call.error ? String(call.error) : pretty(call.output)),
        ),
      ),
    ),
  );
}

/** JSON indented, when it is JSON; else the text as it is. */
function pretty(value) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

// -- routing --------------------------------------------------------------------------------

function routingSection(answer) {
  const gateway = answer.gateway;
  const served = answer.served || {};
  const rows = [];
  let headline;
  if (gateway.model === "@auto" && gateway.routing) {
    const tiers = gateway.routing.tiers || [];
    const tier = tiers.indexOf(served.model);
    headline = served.complexity ? `complexity ${served.complexity} → ${served.model || "?"}` : `→ ${served.model || "?"}`;
    const decided = (answer.context || {}).routing || {};
    rows.push(["Router", h("code", {}, decided.router || gateway.routing.router)]);
    rows.push(["Complexity", served.complexity ? `${served.complexity} (1 small talk – 5 proofs, complex code)` : "—"]);
    if (typeof decided.score === "number") rows.push(["Score", `${decided.score.toFixed(3)} (0 easy – 1 hard)`]);
    if (typeof decided.rule === "number") rows.push(["Rule", `rule ${decided.rule + 1} of the gateway forced this tier`]);
    rows.push(["Tier served", tier >= 0 ? [h("code", {}, served.model), ` (tier ${tier + 1} of ${tiers.length})`] : h("code", {}, served.model || "—")]);
    rows.push(["Tiers", tiers.map((model, i) => [i ? " · " : "", h("code", {}, model)])]);
    if (served.routingFallback) rows.push(["Fallback", h("span", { class: "badge pending" }, "the router gave no digit: the middle tier served")]);
  } else {
    headline = `not routed · ${served.model === "endpoint" ? "own endpoint" : served.model || gateway.model || "—"}`;
    rows.push(["Routing", "None: the gateway names its model (only @auto routes)."]);
    const fallback = gateway.model && served.model && served.model !== gateway.model;
    rows.push(["Model served", [h("code", {}, served.model === "endpoint" ? "the gateway's own endpoint" : served.model || "—"), fallback ? [" ", h("span", { class: "badge pending" }, `a fallback: ${gateway.model} failed`)] : null]]);
    if (gateway.fallbacks && gateway.fallbacks.length) rows.push(["Fallbacks", gateway.fallbacks.map((model, i) => [i ? " · " : "", h("code", {}, model)])]);
  }
  if (answer.upstreamModel) rows.push(["Upstream answered as", h("code", {}, answer.upstreamModel)]);
  if (answer.requestId) rows.push(["Request id", h("span", { class: "row" }, h("code", { "data-request-id": "" }, answer.requestId), copyButton(answer.requestId))]);
  return section("Routing", headline, grid(rows));
}

function grid(rows) {
  return h("dl", { class: "details-grid" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

// -- timing ---------------------------------------------------------------------------------

function timingSection(answer) {
  const { start, firstToken, end } = answer.timing;
  const latency = end - start;
  const ttft = firstToken === null ? null : firstToken - start;
  const body = h("dl", { class: "details-grid" });
  const element = section("Timing", `${ms(latency)}${ttft === null ? "" : ` · first token ${ms(ttft)}`}`, body);

  /** `record`: the request log's (null: not found; undefined: not looked up yet). */
  function show(record) {
    // A stopped answer never got its usage chunk: the request log counted its tokens.
    const logged = record && record.usage;
    const usage = answer.usage || (logged && { prompt_tokens: logged.prompt_tokens, completion_tokens: logged.completion_tokens, prompt_tokens_details: { cached_tokens: logged.cached_tokens } });
    const estimated = !answer.usage && logged && logged.estimated ? " (estimated)" : "";
    const generating = ttft === null ? 0 : (end - firstToken) / 1000;
    const speed = usage && generating > 0 ? usage.completion_tokens / generating : null;
    const cached = usage && usage.prompt_tokens_details ? usage.prompt_tokens_details.cached_tokens || 0 : 0;
    const server = (field) => (record === undefined ? "…" : record === null ? h("span", { class: "muted" }, "not in the request log yet") : ms(record[field]));
    const rows = [
      ["Latency (this browser)", { "data-latency": "" }, ms(latency)],
      ["Time to first token (this browser)", { "data-ttft": "" }, ms(ttft)],
      ["Latency (server)", { "data-server-latency": "" }, server("latency_ms")],
      ["Time to first token (server)", {}, record ? ms(record.time_to_first_token_ms) : "—"],
      ["Speed", {}, speed === null ? "—" : `${speed >= 100 ? Math.round(speed).toLocaleString() : speed.toFixed(1)} tokens/s`],
      ["Prompt tokens", { "data-prompt-tokens": "" }, usage ? `${number(usage.prompt_tokens)}${cached ? ` (${number(cached)} cached)` : ""}${estimated}` : "—"],
      ["Completion tokens", { "data-completion-tokens": "" }, usage ? `${number(usage.completion_tokens)}${estimated}` : "—"],
    ];
    replace(body, rows.map(([term, attrs, value]) => [h("dt", {}, term), h("dd", attrs, value)]));
  }
  show(undefined);
  return { element, setServer: show };
}
