// The gateway form: every field of a definition (SPEC section 2), each registered under the
// name the API gives it in an error's `param` (`parameters.temperature`, `knowledge.top_k`,
// `functions.0.parameters`, `fallbacks.1`), so that a 400 is shown beside what it refuses.
// A new gateway is POSTed whole; an edit is PATCHed as a JSON merge patch of what changed.

import { get, patch, post } from "../api.js";
import { h, replace, toast, uid } from "../dom.js";
import { Form, busy, input, numberOrNull, select } from "../forms.js";
import { checkGroup, clearOnInput, jsonArea, mergePatch, numberInput, readJson, showApiError } from "./form_parts.js";

const OVERRIDABLE = ["temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty", "seed"];
const DEFAULT_OVERRIDABLE = ["temperature", "top_p", "max_tokens", "stop", "seed"];
const STRATEGIES = [
  ["none", "None: no knowledge"],
  ["always", "Always: search with the latest question"],
  ["concatenate", "Concatenate: search with the last few questions"],
  ["rewrite", "Rewrite: a model writes the search query"],
  ["tool", "Tool: the model searches when it wants to"],
];

// -- the catalog ------------------------------------------------------------------------------

/** The catalog (`GET /catalog`): `{currency, chat: [...], byId: Map}`. */
export async function loadCatalog(signal) {
  const answer = await get("/catalog", undefined, { signal });
  const chat = answer.data.filter((m) => m.kind === "chat");
  return { currency: answer.currency, chat, byId: new Map(answer.data.map((m) => [m.id, m])) };
}

function price(value) {
  return Number(value).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 });
}

/** A model's prices in words: "2.50 in · 10.00 out USD per 1M tokens", or "free". */
export function prices(model, currency) {
  if (!model) return "";
  if (!Number(model.price_in) && !Number(model.price_out)) return "free";
  return `${price(model.price_in)} in · ${price(model.price_out)} out ${currency} per 1M tokens`;
}

function modelOptions(catalog, current) {
  const options = catalog.chat.map((m) => [m.id, `${m.id} — ${prices(m, catalog.currency)}`]);
  if (current && !catalog.byId.has(current)) options.unshift([current, `${current} (no longer in the catalog)`]);
  return options;
}

// -- pieces of the form ---------------------------------------------------------------------

/**
 * An ordered list of catalog models (`fallbacks`, `routing.tiers`), each a select known to
 * `form` as `param.N`; rows move up and down and go. Returns `{element, values()}`.
 */
function modelList(form, param, itemLabel, catalog, initial, { addLabel, minimum = 0, hint = null }) {
  let items = [...initial];
  const rows = h("ol", { class: "ordered" });
  const error = h("div", { class: "field-error", id: uid("list-error"), role: "alert" });
  const add = h("button", { type: "button", class: "small" }, addLabel);
  const element = h("div", { class: "ordered-models", "data-param": param }, hint && h("p", { class: "hint" }, hint), rows, error, add);
  form.fields.set(param, { control: add, error, wrapper: element });
  const selects = [];

  function current() {
    return selects.map((s) => s.value);
  }

  function render() {
    for (const key of [...form.fields.keys()]) if (key.startsWith(`${param}.`)) form.fields.delete(key);
    selects.length = 0;
    replace(
      rows,
      items.map((value, i) => {
        const control = select(modelOptions(catalog, value), value);
        selects.push(control);
        const label = `${itemLabel} ${i + 1}`;
        const move = (delta) => {
          items = current();
          const [moved] = items.splice(i, 1);
          items.splice(i + delta, 0, moved);
          render();
          selects[i + delta].focus();
        };
        return h(
          "li",
          { class: "ordered-row" },
          form.field(`${param}.${i}`, label, control),
          h(
            "div",
            { class: "row ordered-buttons" },
            h("button", { type: "button", class: "small", "aria-label": `Move ${label.toLowerCase()} up`, disabled: i === 0, onclick: () => move(-1) }, "↑"),
            h("button", { type: "button", class: "small", "aria-label": `Move ${label.toLowerCase()} down`, disabled: i === items.length - 1, onclick: () => move(1) }, "↓"),
            h(
              "button",
              {
                type: "button",
                class: "small",
                "aria-label": `Remove ${label.toLowerCase()}`,
                disabled: items.length <= minimum,
                onclick: () => {
                  items = current();
                  items.splice(i, 1);
                  render();
                  add.focus();
                },
              },
              "Remove",
            ),
          ),
        );
      }),
    );
    rows.hidden = items.length === 0;
  }

  add.addEventListener("click", () => {
    items = [...current(), catalog.chat[0] ? catalog.chat[0].id : ""];
    render();
    selects[selects.length - 1].focus();
  });
  render();
  return { element, values: current };
}

/** One server-side function's fields, known as `functions.N.*` once `render(N)` places them. */
function functionEditor(form, fn, onRemove) {
  const controls = {
    name: input({ value: fn.name || "", maxlength: 64, autocomplete: "off", spellcheck: "false" }),
    url: input({ type: "url", value: fn.url || "", placeholder: "https://example.com/hooks/order-status" }),
    description: h("textarea", { rows: 2, class: "prose" }),
    parameters: jsonArea(fn.parameters || { type: "object", properties: {} }, { rows: 7 }),
    headers: jsonArea(fn.headers, { rows: 2, placeholder: '{"X-Hook-Secret": "…"}' }),
    timeout_s: h("input", { type: "number", min: 0, max: 120, step: "any", value: fn.timeout_s ?? "", placeholder: "10" }),
  };
  controls.description.value = fn.description || "";
  const remove = h("button", { type: "button", class: "small danger", onclick: () => onRemove() }, "Remove");
  return {
    render(i) {
      const at = (name) => `functions.${i}.${name}`;
      remove.setAttribute("aria-label", `Remove function ${i + 1}`);
      return h(
        "li",
        { class: "function-card" },
        h("div", { class: "function-head" }, h("h3", {}, `Function ${i + 1}`), remove),
        h(
          "div",
          { class: "form-grid" },
          form.field(at("name"), "Function name", controls.name, { hint: "Letters, digits, _ and -. The model calls it by this name." }),
          form.field(at("url"), "URL", controls.url, { hint: "The gateway POSTs the arguments here as JSON." }),
        ),
        form.field(at("description"), "Description", controls.description, { hint: "What the model reads to decide when to call it." }),
        form.field(at("parameters"), "Parameters (JSON Schema)", controls.parameters, { hint: "A JSON Schema of type object; the arguments are checked against it." }),
        h(
          "div",
          { class: "form-grid" },
          form.field(at("headers"), "Headers (JSON, optional)", controls.headers),
          form.field(at("timeout_s"), "Timeout (seconds)", controls.timeout_s, { hint: "Above 0, at most 120; 10 when empty." }),
        ),
      );
    },
    read(i) {
      const value = {
        name: controls.name.value.trim(),
        description: controls.description.value,
        parameters: readJson(controls.parameters, `functions.${i}.parameters`) || { type: "object" },
        url: controls.url.value.trim(),
        headers: readJson(controls.headers, `functions.${i}.headers`),
      };
      const timeout = numberOrNull(controls.timeout_s);
      value.timeout_s = timeout === null ? 10 : timeout;
      return value;
    },
  };
}

// -- the form ---------------------------------------------------------------------------------

// -- the sections: each is `{element, read()}`, `read` giving its part of the definition ----

function section(legend, ...children) {
  return h("fieldset", {}, h("legend", {}, legend), children);
}

function basicsSection(form, g) {
  const name = input({ value: g.name || "", maxlength: 100, autocomplete: "off", spellcheck: "false", required: true });
  const instructions = h("textarea", { rows: 6, class: "prose", placeholder: "You are the support assistant for Acme. Answer briefly." });
  instructions.value = g.instructions || "";
  return {
    element: section(
      "Basics",
      form.field("name", "Name", name, { hint: "What clients send as model. Letters, digits, . _ and -, starting with a letter or digit." }),
      form.field("instructions", "Instructions", instructions, { hint: "The system message every conversation opens with." }),
    ),
    read: () => ({ name: name.value.trim(), instructions: instructions.value }),
  };
}

function upstreamKind(g) {
  if (g.endpoint) return "endpoint";
  return g.model === "@auto" ? "auto" : "catalog";
}

/** Where answers come from: a catalog model (with its prices), an own endpoint, or `@auto`. */
function modelSection(form, g, catalog) {
  let kind = upstreamKind(g);
  const firstChat = catalog.chat[0] ? catalog.chat[0].id : "";
  const model = select(modelOptions(catalog, kind === "catalog" ? g.model : null), kind === "catalog" && g.model ? g.model : firstChat);
  const priceNote = h("span");
  const showPrice = () => {
    const chosen = catalog.byId.get(model.value);
    if (!chosen) return replace(priceNote, "This model is no longer in the catalog: choose another.");
    const parts = [];
    if (!Number(chosen.price_in) && !Number(chosen.price_out)) parts.push("Free: its tokens are recorded at price 0");
    else {
      parts.push(`Per 1M tokens: input ${price(chosen.price_in)}, cached input ${price(chosen.price_cached_in)}, output ${price(chosen.price_out)} ${catalog.currency}`);
    }
    if (chosen.context_length) parts.push(`${chosen.context_length.toLocaleString()} tokens of context`);
    replace(priceNote, `${parts.join(" · ")}.`);
  };
  model.addEventListener("change", showPrice);
  showPrice();

  const endpoint = g.endpoint || {};
  const baseUrl = input({ type: "url", value: endpoint.base_url || "", placeholder: "https://api.openai.com/v1", spellcheck: "false" });
  const apiKey = h("input", { type: "password", autocomplete: "new-password", spellcheck: "false", placeholder: endpoint.api_key_set ? "•••••••• (stored)" : "" });
  const endpointModel = input({ value: endpoint.model || "", placeholder: "gpt-5-mini", spellcheck: "false" });
  const headers = jsonArea(endpoint.headers, { rows: 2, placeholder: '{"OpenAI-Organization": "org-…"}' });

  const routing = g.routing || {};
  // The local router (in process, the default) is no catalog model: offered first.
  const localRouter = "@local/complexity-router";
  const routerOptions = [
    [localRouter, `${localRouter} — in process, a few milliseconds (default)`],
    ...modelOptions(catalog, routing.router === localRouter ? null : routing.router),
  ];
  const router = select(routerOptions, routing.router || localRouter);
  const tiers = modelList(form, "routing.tiers", "Tier", catalog, routing.tiers || [firstChat], {
    addLabel: "Add a tier",
    minimum: 1,
    hint: "Cheapest first: simple conversations go to the first tier, complex ones to the last.",
  });

  const panels = {
    catalog: h("div", { class: "upstream-panel" }, form.field("model", "Catalog model", model, { hint: priceNote })),
    endpoint: h(
      "div",
      { class: "upstream-panel" },
      h(
        "div",
        { class: "form-grid" },
        form.field("endpoint.base_url", "Base URL", baseUrl, { hint: "The URL before /chat/completions, of any OpenAI-compatible server." }),
        form.field("endpoint.model", "Upstream model", endpointModel, { hint: "The model name that server expects." }),
      ),
      form.field("endpoint.api_key", "API key", apiKey, {
        hint: endpoint.api_key_set ? "A key is stored (encrypted). Leave this empty to keep it." : "Optional. Stored encrypted, never shown again.",
      }),
      form.field("endpoint.headers", "Headers (JSON, optional)", headers),
      h("p", { class: "hint" }, "Tokens of your own endpoint are not billed; only knowledge searches and indexing are."),
    ),
    auto: h(
      "div",
      { class: "upstream-panel" },
      form.field("routing.router", "Router model", router, { hint: "Rates how demanding each request is: the local classifier, or a chat model asked for a digit from 1 to 5." }),
      h("fieldset", { class: "nested" }, h("legend", {}, "Tiers"), tiers.element),
    ),
  };
  const showPanels = () => {
    for (const [value, panel] of Object.entries(panels)) panel.hidden = value !== kind;
  };
  const radioName = uid("upstream");
  const choices = [
    ["catalog", "From the catalog", "A model of this server's catalog, at its prices."],
    ["endpoint", "Your own endpoint", "Any OpenAI-compatible server, with your key."],
    ["auto", "@auto routing", "A router model picks a tier for each conversation."],
  ].map(([value, label, text]) => {
    const id = uid("radio");
    const radio = h("input", { type: "radio", name: radioName, id, value, checked: value === kind });
    radio.addEventListener("change", () => {
      kind = value;
      showPanels();
    });
    return h("label", { class: "mode-choice", for: id }, radio, h("span", {}, h("strong", {}, label), h("span", { class: "hint" }, text)));
  });
  showPanels();

  return {
    element: section(
      "Model",
      h("fieldset", { class: "mode-choices" }, h("legend", { class: "sub-legend" }, "Where answers come from"), choices),
      panels.catalog,
      panels.endpoint,
      panels.auto,
    ),
    read() {
      const value = {
        model: kind === "catalog" ? model.value : kind === "auto" ? "@auto" : null,
        endpoint: null,
        routing: kind === "auto" ? { router: router.value, tiers: tiers.values() } : null,
      };
      if (kind === "endpoint") {
        value.endpoint = { base_url: baseUrl.value.trim(), model: endpointModel.value.trim(), headers: readJson(headers, "endpoint.headers") };
        if (apiKey.value) value.endpoint.api_key = apiKey.value; // none typed: the stored one stays
      }
      return value;
    },
  };
}

function parametersSection(form, g) {
  const params = g.parameters || {};
  const numbers = {
    temperature: ["Temperature", "0 to 2", numberInput(params.temperature, { min: 0, max: 2, placeholder: "upstream default" })],
    top_p: ["Top p", "0 to 1", numberInput(params.top_p, { min: 0, max: 1, placeholder: "upstream default" })],
    max_tokens: ["Max tokens", "1 or more", numberInput(params.max_tokens, { min: 1, step: 1, inputmode: "numeric", placeholder: "upstream default" })],
    presence_penalty: ["Presence penalty", "−2 to 2", numberInput(params.presence_penalty, { min: -2, max: 2, placeholder: "0" })],
    frequency_penalty: ["Frequency penalty", "−2 to 2", numberInput(params.frequency_penalty, { min: -2, max: 2, placeholder: "0" })],
    seed: ["Seed", "An integer", numberInput(params.seed, { step: 1, inputmode: "numeric", placeholder: "none" })],
  };
  const stop = h("textarea", { rows: 2, spellcheck: "false" });
  stop.value = params.stop === null || params.stop === undefined ? "" : [params.stop].flat().join("\n");
  const prefill = h("textarea", { rows: 2, class: "prose", placeholder: "e.g. Sure! " });
  prefill.value = params.prefill || "";
  const overridable = checkGroup(form, "overridable", "A request may override", OVERRIDABLE.map((n) => [n, n]), g.overridable || DEFAULT_OVERRIDABLE, {
    hint: "For these parameters a request's own value replaces the gateway's; for the others it is ignored.",
  });
  return {
    element: section(
      "Parameters",
      h("p", { class: "hint" }, "Empty means not sent: the upstream's default applies."),
      h(
        "div",
        { class: "form-grid" },
        Object.entries(numbers).map(([key, [label, hint, control]]) => form.field(`parameters.${key}`, label, control, { hint })),
      ),
      h(
        "div",
        { class: "form-grid" },
        form.field("parameters.stop", "Stop sequences", stop, { hint: "One per line, at most 4." }),
        form.field("parameters.prefill", "Prefill", prefill, { hint: "Every answer begins with this text." }),
      ),
      overridable.element,
    ),
    read() {
      const stops = stop.value.split("\n").map((s) => s.trim()).filter(Boolean);
      return {
        parameters: {
          ...Object.fromEntries(Object.entries(numbers).map(([key, [, , control]]) => [key, numberOrNull(control)])),
          stop: stops.length === 0 ? null : stops.length === 1 ? stops[0] : stops,
          prefill: prefill.value === "" ? null : prefill.value,
        },
        overridable: overridable.values(),
      };
    },
  };
}

const KNOWLEDGE_DEFAULTS = { mode: "hybrid", context_turns: 3, below_threshold: "low_confidence", context_weight: 0.7 };

function knowledgeSection(form, g, collections) {
  const knowledge = g.knowledge || {};
  const chosen = checkGroup(form, "knowledge.collections", "Collections", collections.map((c) => [c.id, c.name]), knowledge.collections || [], {
    empty: h("p", { class: "hint" }, "This account has no collections yet. ", h("a", { href: "#/knowledge" }, "Create one on the Knowledge page"), " to ground answers in your documents."),
  });
  const strategy = select(STRATEGIES, knowledge.strategy || "none");
  const mode = select([["hybrid", "Hybrid (vector and keyword)"], ["vector", "Vector"], ["keyword", "Keyword"]], knowledge.mode || "hybrid");
  const belowThreshold = select([["low_confidence", "Send the best few, marked low-confidence"], ["drop", "Send nothing"]], knowledge.below_threshold || "low_confidence");
  const numbers = {
    top_k: numberInput(knowledge.top_k ?? 5, { min: 1, max: 50, step: 1, inputmode: "numeric" }),
    min_score: numberInput(knowledge.min_score ?? 0.2, { min: 0, max: 1, step: 0.05 }),
    context_turns: numberInput(knowledge.context_turns ?? 3, { min: 1, max: 50, step: 1, inputmode: "numeric" }),
    context_weight: numberInput(knowledge.context_weight ?? 0.7, { min: 0, max: 1, step: 0.1 }),
  };
  const tuned = Object.entries(KNOWLEDGE_DEFAULTS).some(([key, value]) => knowledge[key] !== undefined && knowledge[key] !== value);
  return {
    element: section(
      "Knowledge",
      chosen.element,
      h(
        "div",
        { class: "form-grid" },
        form.field("knowledge.strategy", "Strategy", strategy, { hint: "How the collections ground the answers." }),
        form.field("knowledge.top_k", "Top k", numbers.top_k, { hint: "Passages given to the model, 1 to 50." }),
        form.field("knowledge.min_score", "Minimum score", numbers.min_score, { hint: "0.2 keeps nearly every right answer." }),
      ),
      h(
        "details",
        { class: "more", open: tuned },
        h("summary", {}, "More knowledge settings"),
        h(
          "div",
          { class: "form-grid" },
          form.field("knowledge.mode", "Search mode", mode),
          form.field("knowledge.context_turns", "Context turns", numbers.context_turns, { hint: "User turns that concatenate and rewrite read." }),
          form.field("knowledge.below_threshold", "When nothing passes the minimum", belowThreshold),
          form.field("knowledge.context_weight", "Context weight", numbers.context_weight, { hint: "Always: how much earlier turns weigh, 0 to 1." }),
        ),
      ),
    ),
    read() {
      const value = { collections: chosen.values(), strategy: strategy.value, mode: mode.value, below_threshold: belowThreshold.value };
      for (const [key, control] of Object.entries(numbers)) {
        const number = numberOrNull(control);
        if (number !== null) value[key] = number; // empty: the default
      }
      return { knowledge: value };
    },
  };
}

/** The functions, re-numbered (`functions.N.*`) whenever one is added or removed. */
function functionsSection(form, g) {
  const list = h("ol", { class: "functions" });
  const add = h("button", { type: "button", class: "small" }, "Add a function");
  let editors = [];
  const render = () => {
    for (const key of [...form.fields.keys()]) if (key.startsWith("functions.")) form.fields.delete(key);
    replace(list, editors.map((e, i) => e.render(i)));
    list.hidden = editors.length === 0;
  };
  const editor = (fn) => {
    const made = functionEditor(form, fn, () => {
      editors = editors.filter((e) => e !== made);
      render();
      add.focus();
    });
    return made;
  };
  add.addEventListener("click", () => {
    editors.push(editor({}));
    render();
    list.lastElementChild.querySelector("input").focus();
  });
  editors = (g.functions || []).map(editor);
  render();
  const error = h("div", { class: "field-error", id: uid("functions-error"), role: "alert" });
  const box = h("div", { "data-param": "functions" }, list, error, add);
  form.fields.set("functions", { control: add, error, wrapper: box });
  return {
    element: section("Functions", h("p", { class: "hint" }, "Server-side functions: when the model calls one, the gateway runs it and feeds the answer back."), box),
    read: () => ({ functions: editors.map((e, i) => e.read(i)) }),
  };
}

function fallbacksSection(form, g, catalog) {
  const fallbacks = modelList(form, "fallbacks", "Fallback", catalog, g.fallbacks || [], {
    addLabel: "Add a fallback",
    hint: "Tried in order when the upstream fails before its first byte.",
  });
  return { element: section("Fallbacks", fallbacks.element), read: () => ({ fallbacks: fallbacks.values() }) };
}

// -- the page ---------------------------------------------------------------------------------

/** The page for a new gateway (`gateway` null) or for editing one. */
export async function gatewayFormPage(ctx, gateway) {
  const [catalog, collections] = await Promise.all([
    loadCatalog(ctx.signal),
    get("/collections", undefined, { signal: ctx.signal }).then((a) => a.data),
  ]);
  const g = gateway || {};
  const form = new Form();
  const sections = [
    basicsSection(form, g),
    modelSection(form, g, catalog),
    parametersSection(form, g),
    knowledgeSection(form, g, collections),
    functionsSection(form, g),
    fallbacksSection(form, g, catalog),
  ];
  const here = gateway ? `#/gateways/${encodeURIComponent(gateway.id)}` : "#/gateways";
  const save = h("button", { type: "submit", class: "primary" }, gateway ? "Save changes" : "Create gateway");
  const element = h(
    "form",
    { class: "gateway-form", novalidate: true, "aria-labelledby": "gateway-form-title" },
    h(
      "div",
      { class: "page-head" },
      h(
        "div",
        {},
        h("p", { class: "crumbs" }, h("a", { href: "#/gateways" }, "Gateways"), gateway && [" / ", h("a", { href: here }, gateway.name)]),
        h("h1", { id: "gateway-form-title" }, gateway ? `Edit ${gateway.name}` : "New gateway"),
      ),
    ),
    form.general,
    sections.map((s) => s.element),
    h("div", { class: "actions form-actions" }, h("a", { class: "button", href: here }, "Cancel"), save),
  );

  element.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(save, async () => {
      form.clear();
      let body;
      try {
        body = Object.assign({}, ...sections.map((s) => s.read()));
      } catch (err) {
        return showApiError(form, err); // JSON that does not parse, beside its textarea
      }
      try {
        let saved;
        if (gateway) {
          const changes = mergePatch(gateway, body);
          if (!Object.keys(changes).length) {
            toast("Nothing changed.");
            return ctx.navigate(`gateways/${encodeURIComponent(gateway.id)}`);
          }
          saved = await patch(`/gateways/${encodeURIComponent(gateway.id)}`, changes);
          toast("Saved.");
        } else {
          saved = await post("/gateways", body);
          toast(`${saved.name} created.`);
        }
        ctx.navigate(`gateways/${encodeURIComponent(saved.id)}`);
      } catch (err) {
        showApiError(form, err);
        if (form.general.textContent) form.general.scrollIntoView({ block: "center" });
      }
    });
  });
  clearOnInput(form, element);
  return element;
}
