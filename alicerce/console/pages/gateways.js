// Gateways: the list, one gateway (its definition and ready-to-copy code that calls it), and
// the form to create or edit one (`gateway_form.js`). Routes: `#/gateways`, `#/gateways/new`,
// `#/gateways/<id>`, `#/gateways/<id>/edit`.

import { del, get } from "../api.js";
import { badge, confirmAction, copyButton, emptyState, h, table, toast, uid, when } from "../dom.js";
import { gatewayFormPage, loadCatalog, prices } from "./gateway_form.js";

export default {
  title: "Gateways",
  async render(ctx, params) {
    const [ref, action] = params;
    if (ref === "new") return gatewayFormPage(ctx, null);
    if (ref) {
      const gateway = await get(`/gateways/${encodeURIComponent(ref)}`, undefined, { signal: ctx.signal });
      return action === "edit" ? gatewayFormPage(ctx, gateway) : detail(ctx, gateway);
    }
    return list(ctx);
  },
};

function newButton() {
  return h("a", { class: "button primary", href: "#/gateways/new" }, "New gateway");
}

/** What answers a gateway: its catalog model, its own endpoint, or `@auto`'s tiers. */
function upstream(gateway) {
  if (gateway.endpoint) return ["Own endpoint: ", h("code", {}, gateway.endpoint.model)];
  if (gateway.model === "@auto") return [h("code", {}, "@auto"), ` · ${gateway.routing.tiers.length} tiers`];
  return h("code", {}, gateway.model);
}

function knowledgeSummary(gateway) {
  const k = gateway.knowledge;
  if (!k || k.strategy === "none") return h("span", { class: "muted" }, "—");
  return `${k.strategy} · ${k.collections.length} collection${k.collections.length === 1 ? "" : "s"}`;
}

async function list(ctx) {
  const { data } = await get("/gateways", undefined, { signal: ctx.signal });
  const head = h(
    "div",
    { class: "page-head" },
    h("div", {}, h("h1", {}, "Gateways"), h("p", { class: "muted lede" }, "Ready-to-use models for your apps: each answers to its slug, with its instructions, model, knowledge and functions.")),
    data.length ? newButton() : null,
  );
  if (!data.length) {
    return h(
      "section",
      {},
      head,
      emptyState(
        "No gateways yet",
        "A gateway is a ready-to-use model for your apps: instructions, a model from the catalog (or your own endpoint), parameters, knowledge and functions, behind one name that clients send as model.",
        newButton(),
      ),
    );
  }
  return h(
    "section",
    {},
    head,
    table(
      [
        {
          label: "Name",
          cell: (g) => h("div", {}, h("a", { class: "strong-link", href: `#/gateways/${encodeURIComponent(g.id)}` }, g.name), h("div", { class: "muted small" }, h("code", {}, g.slug))),
        },
        { label: "Model", cell: upstream },
        { label: "Knowledge", cell: knowledgeSummary },
        { label: "Functions", class: "num", cell: (g) => String(g.functions.length) },
        { label: "Fallbacks", class: "num", cell: (g) => String(g.fallbacks.length) },
        { label: "Updated", cell: (g) => when(g.updated_at) },
      ],
      data,
      { onRow: (g) => ctx.navigate(`gateways/${encodeURIComponent(g.id)}`) },
    ),
  );
}

// -- one gateway ------------------------------------------------------------------------------

function snippets(slug) {
  const base = `${location.origin}/api/v1`;
  return [
    {
      label: "curl",
      note: "Shell, with ALICERCE_API_KEY set",
      text: [
        `curl ${base}/chat/completions \\`,
        '  -H "Authorization: Bearer $ALICERCE_API_KEY" \\',
        '  -H "Content-Type: application/json" \\',
        `  -d '{"model": "${slug}", "messages": [{"role": "user", "content": "Hello!"}]}'`,
      ].join("\n"),
    },
    {
      label: "Python",
      note: "pip install openai",
      text: [
        "import os",
        "",
        "from openai import OpenAI",
        "",
        "client = OpenAI(",
        `    base_url="${base}",`,
        '    api_key=os.environ["ALICERCE_API_KEY"],',
        ")",
        "response = client.chat.completions.create(",
        `    model="${slug}",`,
        '    messages=[{"role": "user", "content": "Hello!"}],',
        ")",
        "print(response.choices[0].message.content)",
      ].join("\n"),
    },
    {
      label: "JavaScript",
      note: "npm install openai (an ES module)",
      text: [
        'import OpenAI from "openai";',
        "",
        "const client = new OpenAI({",
        `  baseURL: "${base}",`,
        "  apiKey: process.env.ALICERCE_API_KEY,",
        "});",
        "const response = await client.chat.completions.create({",
        `  model: "${slug}",`,
        '  messages: [{ role: "user", content: "Hello!" }],',
        "});",
        "console.log(response.choices[0].message.content);",
      ].join("\n"),
    },
  ];
}

/** Tabs (the ARIA pattern: arrow keys move between them), one code sample in each. */
function snippetTabs(items) {
  const tabs = [];
  const panels = [];
  const select = (index, focus = false) => {
    tabs.forEach((tab, i) => {
      tab.setAttribute("aria-selected", String(i === index));
      tab.tabIndex = i === index ? 0 : -1;
      panels[i].hidden = i !== index;
    });
    if (focus) tabs[index].focus();
  };
  items.forEach((item, i) => {
    const tabId = uid("tab");
    const panelId = uid("panel");
    const tab = h("button", { type: "button", role: "tab", id: tabId, "aria-controls": panelId }, item.label);
    tab.addEventListener("click", () => select(i));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: items.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      select((moves[event.key] + items.length) % items.length, true);
    });
    tabs.push(tab);
    panels.push(
      h(
        "div",
        { role: "tabpanel", id: panelId, "aria-labelledby": tabId, class: "snippet-panel" },
        h("div", { class: "snippet-bar" }, h("code", { class: "muted small" }, item.note), copyButton(item.text, "Copy")),
        h("pre", { class: "snippet", tabindex: "0", "aria-label": `${item.label} example` }, h("code", {}, item.text)),
      ),
    );
  });
  select(0);
  return h("div", { class: "snippets" }, h("div", { class: "tabs", role: "tablist", "aria-label": "Code samples" }, tabs), panels);
}

function definitionList(rows) {
  return h(
    "dl",
    { class: "details-grid" },
    rows.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

function valueOrDash(value) {
  return value === null || value === undefined || value === "" ? h("span", { class: "muted" }, "—") : String(value);
}

function modelLine(id, catalog) {
  const model = catalog.byId.get(id);
  return h("span", {}, h("code", {}, id), model ? h("span", { class: "muted" }, ` · ${prices(model, catalog.currency)}`) : h("span", { class: "badge bad" }, "not in the catalog"));
}

async function detail(ctx, gateway) {
  const [catalog, collections] = await Promise.all([
    loadCatalog(ctx.signal),
    get("/collections", undefined, { signal: ctx.signal }).then((a) => a.data),
  ]);
  const collectionName = new Map(collections.map((c) => [c.id, c.name]));
  const id = encodeURIComponent(gateway.id);
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  remove.addEventListener("click", async () => {
    const sure = await confirmAction(
      `Delete ${gateway.name}?`,
      `Clients calling ${gateway.slug} will get 404 from now on. Its request log stays. This cannot be undone.`,
    );
    if (!sure) return;
    try {
      await del(`/gateways/${id}`);
      toast(`${gateway.name} deleted.`);
      ctx.navigate("gateways");
    } catch (err) {
      toast(err.message, "bad");
    }
  });

  const p = gateway.parameters;
  const set = Object.entries(p).filter(([key, value]) => key !== "prefill" && value !== null);
  const k = gateway.knowledge;
  const upstreamRows = gateway.endpoint
    ? [
        ["Upstream", "Own endpoint"],
        ["Base URL", h("code", {}, gateway.endpoint.base_url)],
        ["Model", h("code", {}, gateway.endpoint.model)],
        ["API key", gateway.endpoint.api_key_set ? badge("stored", "good") : h("span", { class: "muted" }, "none")],
      ]
    : gateway.model === "@auto"
      ? [
          ["Upstream", h("code", {}, "@auto")],
          ["Router", modelLine(gateway.routing.router, catalog)],
          ["Tiers", h("ol", { class: "plain-list" }, gateway.routing.tiers.map((t) => h("li", {}, modelLine(t, catalog))))],
        ]
      : [["Model", modelLine(gateway.model, catalog)]];

  return h(
    "section",
    { class: "gateway-detail" },
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("p", { class: "crumbs" }, h("a", { href: "#/gateways" }, "Gateways")), h("h1", {}, gateway.name), h("div", { class: "row" }, h("code", { class: "slug" }, gateway.slug), copyButton(gateway.slug, "Copy slug"))),
      h(
        "div",
        { class: "row" },
        h("a", { class: "button", href: `#/playground/${id}` }, "Try in Playground"),
        h("a", { class: "button primary", href: `#/gateways/${id}/edit` }, "Edit"),
        remove,
      ),
    ),
    h(
      "div",
      { class: "columns" },
      h(
        "div",
        { class: "card" },
        h("h2", {}, "Call it"),
        h("p", { class: "muted" }, "Any OpenAI client works: send the slug as the model, with an inference key from the ", h("a", { href: "#/keys" }, "Keys"), " page in ALICERCE_API_KEY."),
        snippetTabs(snippets(gateway.slug)),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", {}, "Definition"),
        definitionList([
          ["Slug", h("code", {}, gateway.slug)],
          ["Id", h("code", {}, gateway.id)],
          ...upstreamRows,
          ["Parameters", set.length ? set.map(([key, value]) => h("div", {}, h("code", {}, key), ` ${JSON.stringify(value)}`)) : h("span", { class: "muted" }, "upstream defaults")],
          ["Overridable", gateway.overridable.length ? gateway.overridable.join(", ") : h("span", { class: "muted" }, "none")],
          p.prefill !== null && ["Prefill", h("span", { class: "quoted" }, p.prefill)],
          [
            "Knowledge",
            k.strategy === "none"
              ? h("span", { class: "muted" }, "none")
              : h("div", {}, `${k.strategy}, top ${k.top_k}, minimum score ${k.min_score}, ${k.mode}`, h("div", {}, k.collections.map((c) => badge(collectionName.get(c) || c)))),
          ],
          ["Fallbacks", gateway.fallbacks.length ? h("ol", { class: "plain-list" }, gateway.fallbacks.map((f) => h("li", {}, modelLine(f, catalog)))) : h("span", { class: "muted" }, "none")],
          ["Created", when(gateway.created_at)],
          ["Updated", when(gateway.updated_at)],
        ]),
      ),
    ),
    h(
      "div",
      { class: "card" },
      h("h2", {}, "Instructions"),
      gateway.instructions ? h("div", { class: "message instructions" }, gateway.instructions) : h("p", { class: "muted" }, "None: the conversation goes to the model as the client sends it."),
    ),
    gateway.functions.length > 0 &&
      h(
        "div",
        { class: "card" },
        h("h2", {}, "Functions"),
        gateway.functions.map((f) =>
          h(
            "div",
            { class: "function-view" },
            h("h3", {}, h("code", {}, f.name)),
            f.description && h("p", {}, f.description),
            definitionList([
              ["URL", h("code", {}, f.url)],
              ["Timeout", `${f.timeout_s} s`],
              ["Headers", f.headers ? Object.keys(f.headers).join(", ") : valueOrDash(null)],
            ]),
            h("details", {}, h("summary", {}, "Parameters (JSON Schema)"), h("pre", { class: "snippet", tabindex: "0" }, JSON.stringify(f.parameters, null, 2))),
          ),
        ),
      ),
  );
}
