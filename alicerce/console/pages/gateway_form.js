// The gateway form: every field of a definition (SPEC section 2), each registered under the
// name the API gives it in an error's `param` (`parameters.temperature`, `knowledge.top_k`,
// `functions.0.parameters`, `fallbacks.1`), so that a 400 is shown beside what it refuses.
// A new gateway is POSTed whole; an edit is PATCHed as a JSON merge patch of what changed.

import { get, patch, post } from "../api.js";
import { append, h, replace, toast, uid } from "../dom.js";
import { Form, busy, input, numberOrNull, select } from "../forms.js";

const OVERRIDABLE = ["temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty", "seed"];
const DEFAULT_OVERRIDABLE = ["temperature", "top_p", "max_tokens", "stop", "seed"];
const STRATEGIES = [
  ["none", "None: no knowledge"],
  ["always", "Always: search with the latest question"],
  ["concatenate", "Concatenate: search with the last few questions"],
  ["rewrite", "Rewrite: a model writes the search query"],
  ["tool", "Tool: the model searches when it wants to"],
];
const SCHEMA_EXAMPLE = '{\n  "type": "object",\n  "properties": {\n    "order": {"type": "string"}\n  },\n  "required": ["order"]\n}';

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

/** The field of `form` an error's `param` names, or its closest enclosing one (as `Form`). */
function fieldFor(form, param) {
  const parts = String(param || "").split(/[.[\]]+/).filter(Boolean);
  for (let n = parts.length; n > 0; n -= 1) {
    const found = form.fields.get(parts.slice(0, n).join("."));
    if (found) return found;
  }
  return null;
}

/**
 * Shows an API error on `form`; beside a field, without the `param: ` the API starts its
 * message with (the field says which it is). Errors of a field go when it is changed.
 */
export function showApiError(form, err) {
  if (err && err.param && typeof err.message === "string" && fieldFor(form, err.param)) {
    const prefix = `${err.param}: `;
    const text = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    return form.showError({ param: err.param, message: text.charAt(0).toUpperCase() + text.slice(1) });
  }
  return form.showError(err);
}

/** Clears a field's error once the user changes it. */
export function clearOnInput(form, element) {
  const clear = (event) => {
    for (const { control, error, wrapper } of form.fields.values()) {
      if (error.textContent && wrapper.contains(event.target)) {
        replace(error);
        control.removeAttribute("aria-invalid");
      }
    }
  };
  element.addEventListener("input", clear);
  element.addEventListener("change", clear);
}

/**
 * A group of checkboxes known to `form` by `param` (so an error on it, or on `param.N`, is
 * shown under the group). Returns `{element, values()}`.
 */
export function checkGroup(form, param, legend, options, checked = [], { hint = null, empty = null } = {}) {
  const boxes = options.map(([value, label]) => {
    const id = uid("check");
    const box = h("input", { type: "checkbox", id, value, checked: checked.includes(value) });
    return { box, item: h("label", { class: "check", for: id }, box, h("span", {}, label)) };
  });
  const error = h("div", { class: "field-error", id: uid("group-error"), role: "alert" });
  const element = h(
    "fieldset",
    { class: "choices", "data-param": param, "aria-describedby": error.id },
    h("legend", {}, legend),
    hint && h("div", { class: "hint" }, hint),
    boxes.length ? h("div", { class: "choice-list" }, boxes.map((b) => b.item)) : empty,
    error,
  );
  form.fields.set(param, { control: boxes.length ? boxes[0].box : element, error, wrapper: element });
  return { element, values: () => boxes.filter((b) => b.box.checked).map((b) => b.box.value) };
}

/** A textarea of JSON; `read()` is its value (null when empty) or throws an error naming `param`. */
function jsonArea(value, attrs = {}) {
  const area = h("textarea", { spellcheck: "false", ...attrs });
  area.value = value === null || value === undefined ? "" : JSON.stringify(value, null, 2);
  return area;
}

function readJson(area, param, { object = true } = {}) {
  const text = area.value.trim();
  if (!text) return null;
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw { param, message: `Not valid JSON: ${err.message}` };
  }
  if (object && (value === null || typeof value !== "object" || Array.isArray(value))) {
    throw { param, message: "This must be a JSON object: {…}." };
  }
  return value;
}

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

// -- the merge patch --------------------------------------------------------------------------

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function same(a, b) {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** RFC 7396: what turns `before` into `after` (objects key by key; lists and values whole). */
export function mergePatch(before, after) {
  const out = {};
  for (const [key, value] of Object.entries(after)) {
    const old = before ? before[key] : undefined;
    if (isObject(value) && isObject(old)) {
      const inner = mergePatch(old, value);
      if (Object.keys(inner).length) out[key] = inner;
    } else if (!same(old, value)) {
      out[key] = value;
    }
  }
  return out;
}

// -- the form ---------------------------------------------------------------------------------

function numberInput(value, attrs = {}) {
  return h("input", { type: "number", step: "any", inputmode: "decimal", value: value ?? "", ...attrs });
}

function upstreamKind(gateway) {
  if (!gateway) return "catalog";
  if (gateway.endpoint) return "endpoint";
  return gateway.model === "@auto" ? "auto" : "catalog";
}

/** The page for a new gateway (`gateway` null) or for editing one. */
export async function gatewayFormPage(ctx, gateway) {
  const [catalog, collections] = await Promise.all([
    loadCatalog(ctx.signal),
    get("/collections", undefined, { signal: ctx.signal }).then((a) => a.data),
  ]);
  const g = gateway || {};
  const params = g.parameters || {};
  const knowledge = g.knowledge || {};
  const form = new Form();

  // Basics
  const name = input({ value: g.name || "", maxlength: 100, autocomplete: "off", spellcheck: "false", required: true });
  const instructions = h("textarea", { rows: 6, class: "prose", placeholder: "You are the support assistant for Acme. Answer briefly." });
  instructions.value = g.instructions || "";

  // Model
  let kind = upstreamKind(gateway);
  const firstChat = catalog.chat[0] ? catalog.chat[0].id : "";
  const modelSelect = select(modelOptions(catalog, kind === "catalog" ? g.model : null), kind === "catalog" && g.model ? g.model : firstChat);
  const priceNote = h("span");
  const showPrice = () => {
    const model = catalog.byId.get(modelSelect.value);
    if (!model) return replace(priceNote, "This model is no longer in the catalog: choose another.");
    const parts = [];
    if (!Number(model.price_in) && !Number(model.price_out)) parts.push("Free: its tokens are recorded at price 0");
    else {
      parts.push(`Per 1M tokens: input ${price(model.price_in)}, cached input ${price(model.price_cached_in)}, output ${price(model.price_out)} ${catalog.currency}`);
    }
    if (model.context_length) parts.push(`${model.context_length.toLocaleString()} tokens of context`);
    replace(priceNote, `${parts.join(" · ")}.`);
  };
  modelSelect.addEventListener("change", showPrice);
  showPrice();
  const endpoint = g.endpoint || {};
  const baseUrl = input({ type: "url", value: endpoint.base_url || "", placeholder: "https://api.openai.com/v1", spellcheck: "false" });
  const apiKey = h("input", { type: "password", autocomplete: "new-password", spellcheck: "false", placeholder: endpoint.api_key_set ? "•••••••• (stored)" : "" });
  const endpointModel = input({ value: endpoint.model || "", placeholder: "gpt-5-mini", spellcheck: "false" });
  const endpointHeaders = jsonArea(endpoint.headers, { rows: 2, placeholder: '{"OpenAI-Organization": "org-…"}' });
  const routing = g.routing || {};
  const router = select(modelOptions(catalog, routing.router), routing.router || firstChat);

  const panels = {
    catalog: h(
      "div",
      { class: "upstream-panel" },
      form.field("model", "Catalog model", modelSelect, { hint: priceNote }),
    ),
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
      form.field("endpoint.headers", "Headers (JSON, optional)", endpointHeaders),
      h("p", { class: "hint" }, "Tokens of your own endpoint are not billed; only knowledge searches and indexing are."),
    ),
    auto: h("div", { class: "upstream-panel" }),
  };
  append(panels.auto, [
    form.field("routing.router", "Router model", router, { hint: "Reads the conversation and rates its complexity from 1 to 5." }),
  ]);
  const tiers = modelList(form, "routing.tiers", "Tier", catalog, routing.tiers || [firstChat], {
    addLabel: "Add a tier",
    minimum: 1,
    hint: "Cheapest first: simple conversations go to the first tier, complex ones to the last.",
  });
  panels.auto.append(h("fieldset", { class: "nested" }, h("legend", {}, "Tiers"), tiers.element));

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
  const showPanels = () => {
    for (const [value, panel] of Object.entries(panels)) panel.hidden = value !== kind;
  };
  showPanels();

  // Parameters
  const p = {
    temperature: numberInput(params.temperature, { min: 0, max: 2, placeholder: "upstream default" }),
    top_p: numberInput(params.top_p, { min: 0, max: 1, placeholder: "upstream default" }),
    max_tokens: numberInput(params.max_tokens, { min: 1, step: 1, inputmode: "numeric", placeholder: "upstream default" }),
    presence_penalty: numberInput(params.presence_penalty, { min: -2, max: 2, placeholder: "0" }),
    frequency_penalty: numberInput(params.frequency_penalty, { min: -2, max: 2, placeholder: "0" }),
    seed: numberInput(params.seed, { step: 1, inputmode: "numeric", placeholder: "none" }),
  };
  const stop = h("textarea", { rows: 2, spellcheck: "false" });
  stop.value = params.stop === null || params.stop === undefined ? "" : [params.stop].flat().join("\n");
  const prefill = h("textarea", { rows: 2, class: "prose", placeholder: "e.g. Sure! " });
  prefill.value = params.prefill || "";
  const overridable = checkGroup(
    form,
    "overridable",
    "A request may override",
    OVERRIDABLE.map((n) => [n, n]),
    g.overridable || DEFAULT_OVERRIDABLE,
    { hint: "For these parameters a request's own value replaces the gateway's; for the others it is ignored." },
  );

  // Knowledge
  const collectionGroup = checkGroup(
    form,
    "knowledge.collections",
    "Collections",
    collections.map((c) => [c.id, c.name]),
    knowledge.collections || [],
    {
      empty: h("p", { class: "hint" }, "This account has no collections yet. ", h("a", { href: "#/knowledge" }, "Create one on the Knowledge page"), " to ground answers in your documents."),
    },
  );
  const strategy = select(STRATEGIES, knowledge.strategy || "none");
  const topK = numberInput(knowledge.top_k ?? 5, { min: 1, max: 50, step: 1, inputmode: "numeric" });
  const minScore = numberInput(knowledge.min_score ?? 0.2, { min: 0, max: 1, step: 0.05 });
  const mode = select([["hybrid", "Hybrid (vector and keyword)"], ["vector", "Vector"], ["keyword", "Keyword"]], knowledge.mode || "hybrid");
  const contextTurns = numberInput(knowledge.context_turns ?? 3, { min: 1, max: 50, step: 1, inputmode: "numeric" });
  const belowThreshold = select(
    [["low_confidence", "Send the best few, marked low-confidence"], ["drop", "Send nothing"]],
    knowledge.below_threshold || "low_confidence",
  );
  const contextWeight = numberInput(knowledge.context_weight ?? 0.7, { min: 0, max: 1, step: 0.1 });

  // Functions
  const functionList = h("ol", { class: "functions" });
  let editors = [];
  const renderFunctions = () => {
    for (const key of [...form.fields.keys()]) if (key.startsWith("functions.")) form.fields.delete(key);
    replace(functionList, editors.map((e, i) => e.render(i)));
    functionList.hidden = editors.length === 0;
  };
  const newEditor = (fn) => {
    const editor = functionEditor(form, fn, () => {
      editors = editors.filter((e) => e !== editor);
      renderFunctions();
      addFunction.focus();
    });
    return editor;
  };
  const addFunction = h("button", { type: "button", class: "small" }, "Add a function");
  addFunction.addEventListener("click", () => {
    editors.push(newEditor({}));
    renderFunctions();
    functionList.lastElementChild.querySelector("input").focus();
  });
  editors = (g.functions || []).map(newEditor);
  renderFunctions();
  const functionsError = h("div", { class: "field-error", id: uid("functions-error"), role: "alert" });
  const functionsBox = h("div", { "data-param": "functions" }, functionList, functionsError, addFunction);
  form.fields.set("functions", { control: addFunction, error: functionsError, wrapper: functionsBox });

  // Fallbacks
  const fallbacks = modelList(form, "fallbacks", "Fallback", catalog, g.fallbacks || [], {
    addLabel: "Add a fallback",
    hint: "Tried in order when the upstream fails before its first byte.",
  });

  function collect() {
    const stops = stop.value.split("\n").map((s) => s.trim()).filter(Boolean);
    const knowledgeValue = {
      collections: collectionGroup.values(),
      strategy: strategy.value,
      mode: mode.value,
      below_threshold: belowThreshold.value,
    };
    for (const [key, control] of [["top_k", topK], ["min_score", minScore], ["context_turns", contextTurns], ["context_weight", contextWeight]]) {
      const value = numberOrNull(control);
      if (value !== null) knowledgeValue[key] = value;
    }
    const body = {
      name: name.value.trim(),
      instructions: instructions.value,
      model: kind === "catalog" ? modelSelect.value : kind === "auto" ? "@auto" : null,
      endpoint: null,
      parameters: {
        ...Object.fromEntries(Object.entries(p).map(([key, control]) => [key, numberOrNull(control)])),
        stop: stops.length === 0 ? null : stops.length === 1 ? stops[0] : stops,
        prefill: prefill.value === "" ? null : prefill.value,
      },
      overridable: overridable.values(),
      knowledge: knowledgeValue,
      functions: editors.map((e, i) => e.read(i)),
      fallbacks: fallbacks.values(),
      routing: kind === "auto" ? { router: router.value, tiers: tiers.values() } : null,
    };
    if (kind === "endpoint") {
      body.endpoint = { base_url: baseUrl.value.trim(), model: endpointModel.value.trim(), headers: readJson(endpointHeaders, "endpoint.headers") };
      if (apiKey.value) body.endpoint.api_key = apiKey.value;
    }
    return body;
  }

  const save = h("button", { type: "submit", class: "primary" }, gateway ? "Save changes" : "Create gateway");
  const cancel = h("a", { class: "button", href: gateway ? `#/gateways/${encodeURIComponent(gateway.id)}` : "#/gateways" }, "Cancel");
  const element = h(
    "form",
    { class: "gateway-form", novalidate: true, "aria-labelledby": "gateway-form-title" },
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("p", { class: "crumbs" }, h("a", { href: "#/gateways" }, "Gateways"), gateway && [" / ", h("a", { href: `#/gateways/${encodeURIComponent(gateway.id)}` }, gateway.name)]), h("h1", { id: "gateway-form-title" }, gateway ? `Edit ${gateway.name}` : "New gateway")),
    ),
    form.general,
    h(
      "fieldset",
      {},
      h("legend", {}, "Basics"),
      form.field("name", "Name", name, { hint: "What clients send as model. Letters, digits, . _ and -, starting with a letter or digit." }),
      form.field("instructions", "Instructions", instructions, { hint: "The system message every conversation opens with." }),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Model"),
      h("fieldset", { class: "mode-choices" }, h("legend", { class: "sub-legend" }, "Where answers come from"), choices),
      panels.catalog,
      panels.endpoint,
      panels.auto,
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Parameters"),
      h("p", { class: "hint" }, "Empty means not sent: the upstream's default applies."),
      h(
        "div",
        { class: "form-grid" },
        form.field("parameters.temperature", "Temperature", p.temperature, { hint: "0 to 2" }),
        form.field("parameters.top_p", "Top p", p.top_p, { hint: "0 to 1" }),
        form.field("parameters.max_tokens", "Max tokens", p.max_tokens, { hint: "1 or more" }),
        form.field("parameters.presence_penalty", "Presence penalty", p.presence_penalty, { hint: "−2 to 2" }),
        form.field("parameters.frequency_penalty", "Frequency penalty", p.frequency_penalty, { hint: "−2 to 2" }),
        form.field("parameters.seed", "Seed", p.seed, { hint: "An integer" }),
      ),
      h(
        "div",
        { class: "form-grid" },
        form.field("parameters.stop", "Stop sequences", stop, { hint: "One per line, at most 4." }),
        form.field("parameters.prefill", "Prefill", prefill, { hint: "Every answer begins with this text." }),
      ),
      overridable.element,
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Knowledge"),
      collectionGroup.element,
      h(
        "div",
        { class: "form-grid" },
        form.field("knowledge.strategy", "Strategy", strategy, { hint: "How the collections ground the answers." }),
        form.field("knowledge.top_k", "Top k", topK, { hint: "Passages given to the model, 1 to 50." }),
        form.field("knowledge.min_score", "Minimum score", minScore, { hint: "0.2 keeps nearly every right answer." }),
      ),
      h(
        "details",
        { class: "more", open: ["mode", "context_turns", "below_threshold", "context_weight"].some((k) => knowledge[k] !== undefined && !isDefault(k, knowledge[k])) || null },
        h("summary", {}, "More knowledge settings"),
        h(
          "div",
          { class: "form-grid" },
          form.field("knowledge.mode", "Search mode", mode),
          form.field("knowledge.context_turns", "Context turns", contextTurns, { hint: "User turns that concatenate and rewrite read." }),
          form.field("knowledge.below_threshold", "When nothing passes the minimum", belowThreshold),
          form.field("knowledge.context_weight", "Context weight", contextWeight, { hint: "Always: how much earlier turns weigh, 0 to 1." }),
        ),
      ),
    ),
    h("fieldset", {}, h("legend", {}, "Functions"), h("p", { class: "hint" }, "Server-side functions: when the model calls one, the gateway runs it and feeds the answer back."), functionsBox),
    h("fieldset", {}, h("legend", {}, "Fallbacks"), fallbacks.element),
    h("div", { class: "actions form-actions" }, cancel, save),
  );

  element.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(save, async () => {
      form.clear();
      let body;
      try {
        body = collect();
      } catch (err) {
        return showApiError(form, err);
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

const KNOWLEDGE_DEFAULTS = { mode: "hybrid", context_turns: 3, below_threshold: "low_confidence", context_weight: 0.7 };
function isDefault(key, value) {
  return KNOWLEDGE_DEFAULTS[key] === value;
}
