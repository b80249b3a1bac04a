// Overview: spend and requests per day, latency and errors, and where the money went.
//
// Three calls when it opens, sent together: `/usage?group_by=day` (spend per day),
// `/requests/stats?group_by=day` (requests, errors, latency percentiles per day) and
// `/usage?group_by=gateway` (the first breakdown); the breakdowns by SKU and by key are asked
// for when their tab is chosen. Everything is summed by the server; days are UTC days, as the
// API counts them.

import { get } from "../api.js";
import { barChart, lineChart } from "../charts.js";
import { copyButton, emptyState, h, money, ms, number, replace, s, table, uid } from "../dom.js";
import { select } from "../forms.js";

const PERIODS = [
  [7, "Last 7 days"],
  [30, "Last 30 days"],
  [90, "Last 90 days"],
];
const DAY_MS = 86_400_000;
const dayTick = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });

export default {
  title: "Overview",
  async render(ctx, params) {
    const days = PERIODS.some(([n]) => n === Number(params[0])) ? Number(params[0]) : 30;
    const labels = lastDays(days);
    const from = `${labels[0]}T00:00:00Z`;
    const options = { signal: ctx.signal };
    const [usage, stats, byGateway] = await Promise.all([
      get("/usage", { from, group_by: "day" }, options),
      get("/requests/stats", { from, group_by: "day" }, options),
      get("/usage", { from, group_by: "gateway" }, options),
    ]);
    const head = pageHead(ctx, days);
    if (!usage.requests && !usage.refused_requests && !stats.requests && !stats.refused_requests) {
      const ever = await get("/requests", { limit: 1 }, options);
      if (!ever.data.length) return h("section", { "aria-labelledby": "overview-title" }, pageHead(ctx, days, false), firstSteps());
      return h("section", { "aria-labelledby": "overview-title" }, head, quiet(ctx, days));
    }
    const currency = usage.currency;
    const spendByDay = byDay(usage.data, labels);
    const statsByDay = byDay(stats.data, labels);
    const period = PERIODS.find(([n]) => n === days)[1].toLowerCase();
    return h(
      "section",
      { "aria-labelledby": "overview-title", class: "overview" },
      head,
      figures(usage, stats),
      h(
        "div",
        { class: "columns overview-charts" },
        card(
          "Spend per day",
          `in ${currency}`,
          barChart({
            labels,
            tick: (day) => dayTick.format(new Date(`${day}T00:00:00Z`)),
            series: [{ name: "Spend", values: spendByDay.map((d) => (d ? Number(d.amount) : 0)) }],
            format: (v) => money(v, currency),
            axis: short,
            summary: spendSummary(usage, spendByDay, labels, period),
            signal: ctx.signal,
          }),
        ),
        card(
          "Requests per day",
          "succeeded, failed and refused",
          barChart({
            labels,
            tick: (day) => dayTick.format(new Date(`${day}T00:00:00Z`)),
            series: [
              { name: "Succeeded", values: statsByDay.map((d) => (d ? d.requests - d.errors : 0)) },
              { name: "Failed", values: statsByDay.map((d) => (d ? d.errors : 0)) },
              { name: "Refused", values: statsByDay.map((d) => (d ? d.refused_requests : 0)) },
            ],
            format: number,
            axis: short,
            summary: requestsSummary(stats, statsByDay, labels, period),
            signal: ctx.signal,
          }),
        ),
        card(
          "Latency per day",
          "in ms; p50: half of the requests were faster, p95: 19 in 20 were",
          lineChart({
            labels,
            tick: (day) => dayTick.format(new Date(`${day}T00:00:00Z`)),
            series: [
              { name: "p50", values: statsByDay.map((d) => (d ? d.latency_ms.p50 : null)) },
              { name: "p95", values: statsByDay.map((d) => (d ? d.latency_ms.p95 : null)) },
              { name: "First token p50", values: statsByDay.map((d) => (d ? d.time_to_first_token_ms.p50 : null)) },
            ],
            format: ms,
            axis: short,
            summary: `Latency per day, ${period}: p50 ${ms(stats.latency_ms.p50)}, p95 ${ms(stats.latency_ms.p95)} over the period.`,
            signal: ctx.signal,
          }),
        ),
        breakdown(ctx, from, currency, byGateway),
      ),
    );
  },
};

function pageHead(ctx, days, periods = true) {
  const title = h("h1", { id: "overview-title" }, "Overview");
  if (!periods) return h("div", { class: "page-head" }, title);
  const id = uid("period");
  const period = select(PERIODS, days, { id });
  period.addEventListener("change", () => ctx.navigate(`overview/${period.value}`));
  return h(
    "div",
    { class: "page-head" },
    title,
    h("div", { class: "row overview-period" }, h("label", { for: id }, "Period"), period),
  );
}

/** The UTC days of the last `count` days, oldest first, today last (`YYYY-MM-DD`). */
function lastDays(count) {
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  return Array.from({ length: count }, (_, i) => new Date(today - (count - 1 - i) * DAY_MS).toISOString().slice(0, 10));
}

/** The API's entries (only days that had some) laid on every day of the period. */
function byDay(entries, labels) {
  const found = new Map(entries.map((entry) => [entry.day, entry]));
  return labels.map((day) => found.get(day) || null);
}

/** An axis number: short, its unit in the chart's heading. */
function short(value) {
  return Number(value).toLocaleString(undefined, { maximumSignificantDigits: 3 });
}

function percent(rate) {
  if (rate === null || rate === undefined) return "—";
  return `${(rate * 100).toLocaleString(undefined, { maximumFractionDigits: rate < 0.01 ? 2 : 1 })}%`;
}

function busiest(values, labels) {
  let best = 0;
  values.forEach((value, i) => {
    if (value > values[best]) best = i;
  });
  return { value: values[best], day: labels[best] };
}

function spendSummary(usage, spendByDay, labels, period) {
  const top = busiest(spendByDay.map((d) => (d ? Number(d.amount) : 0)), labels);
  return `Spend per day, ${period}: ${money(usage.amount, usage.currency)} in all; the most, ${money(top.value, usage.currency)}, on ${top.day}.`;
}

function requestsSummary(stats, statsByDay, labels, period) {
  const top = busiest(statsByDay.map((d) => (d ? d.requests : 0)), labels);
  return `Requests per day, ${period}: ${number(stats.requests)} served, ${number(stats.errors)} of them failed, ${number(stats.refused_requests)} refused; the most, ${number(top.value)}, on ${top.day}.`;
}

function card(title, note, body) {
  const id = uid("card");
  return h(
    "section",
    { class: "card overview-card", "aria-labelledby": id },
    h("h2", { id }, title),
    note && h("p", { class: "hint overview-note" }, note),
    body,
  );
}

function figure(label, value, note) {
  return h("div", { class: "card overview-figure", "data-figure": label }, h("p", { class: "muted" }, label), h("p", { class: "stat" }, value), h("p", { class: "hint" }, note));
}

function figures(usage, stats) {
  return h(
    "div",
    { class: "stats" },
    figure("Spend", money(usage.amount, usage.currency), "every line item of the period"),
    figure("Requests", number(stats.requests), `${number(stats.refused_requests)} refused at the door`),
    figure("Error rate", percent(stats.error_rate), `${number(stats.errors)} failed`),
    figure("Latency p50 / p95", `${ms(stats.latency_ms.p50)} / ${ms(stats.latency_ms.p95)}`, "the whole request"),
    figure("First token p50", ms(stats.time_to_first_token_ms.p50), "streamed requests"),
  );
}

// -- the breakdown: by gateway, SKU or key ---------------------------------------------------

const BREAKDOWNS = [
  ["gateway", "Gateways"],
  ["sku", "SKUs"],
  ["key", "Keys"],
];

function breakdown(ctx, from, currency, byGateway) {
  const loaded = new Map([["gateway", byGateway]]);
  const panel = h("div", { role: "tabpanel", class: "overview-breakdown", tabindex: "0" });
  const tabs = BREAKDOWNS.map(([group, label]) =>
    h("button", { type: "button", role: "tab", id: `breakdown-${group}`, "aria-controls": "breakdown-panel", "data-group": group }, label),
  );
  panel.id = "breakdown-panel";

  async function show(group, focus = false) {
    for (const tab of tabs) {
      const selected = tab.dataset.group === group;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      if (selected && focus) tab.focus();
    }
    panel.setAttribute("aria-labelledby", `breakdown-${group}`);
    if (!loaded.has(group)) {
      replace(panel, h("p", { class: "muted loading" }, "Loading…"));
      try {
        loaded.set(group, await get("/usage", { from, group_by: group }, { signal: ctx.signal }));
      } catch (err) {
        if (err.name !== "AbortError") replace(panel, h("p", { class: "form-error" }, err.message));
        return;
      }
    }
    if (tabs.find((tab) => tab.getAttribute("aria-selected") === "true").dataset.group === group) {
      replace(panel, breakdownTable(group, loaded.get(group), currency));
    }
  }

  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => show(tab.dataset.group));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      show(tabs[(index + step + tabs.length) % tabs.length].dataset.group, true);
    });
  });
  show("gateway");
  return card("Breakdown", "spend and requests of the period", [
    h("div", { class: "tabs", role: "tablist", "aria-label": "Break down by" }, tabs),
    panel,
  ]);
}

function breakdownTable(group, usage, currency) {
  const rows = [...usage.data].sort((a, b) => Number(b.amount) - Number(a.amount) || b.requests - a.requests);
  if (!rows.length) return h("p", { class: "muted" }, "Nothing was billed in this period.");
  const total = Number(usage.amount);
  const share = (row) => (total > 0 ? Number(row.amount) / total : usage.requests ? row.requests / usage.requests : 0);
  const columns = [
    { label: { gateway: "Gateway", sku: "SKU", key: "Key" }[group], cell: (row) => who(group, row) },
    group === "sku"
      ? { label: "Quantity", class: "num", cell: (row) => `${number(row.quantity)} ${row.unit}${row.quantity === 1 ? "" : "s"}` }
      : { label: "Requests", class: "num", cell: (row) => number(row.requests) },
    { label: "Spend", class: "num", cell: (row) => money(row.amount, currency) },
    { label: "Share", cell: (row) => shareBar(share(row)) },
  ];
  return table(columns, rows);
}

function who(group, row) {
  const id = row[group];
  if (group === "sku") return h("code", {}, id);
  if (id === null) {
    return h("span", { class: "muted" }, group === "gateway" ? "No gateway (catalog models, knowledge)" : "No key (indexing)");
  }
  if (row.name === null) return h("span", {}, h("span", { class: "muted" }, `deleted ${group} `), h("code", {}, id.slice(-12)));
  if (group === "gateway") return h("a", { href: `#/gateways/${encodeURIComponent(id)}` }, row.name);
  return row.name;
}

function shareBar(fraction) {
  const width = 80;
  const text = fraction > 0 && fraction < 0.01 ? "<1%" : `${Math.round(fraction * 100)}%`;
  return h(
    "span",
    { class: "overview-share" },
    s(
      "svg",
      { width, height: 8, viewBox: `0 0 ${width} 8`, "aria-hidden": "true" },
      s("rect", { class: "track", width, height: 8, rx: 4 }),
      s("rect", { class: "fill", width: fraction > 0 ? Math.max(3, fraction * width) : 0, height: 8, rx: 4 }),
    ),
    text,
  );
}

// -- nothing yet -------------------------------------------------------------------------------

function firstSteps() {
  const base = `${location.origin}/api/v1`;
  const code = [
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url="${base}", api_key="YOUR_KEY")`,
    "answer = client.chat.completions.create(",
    '    model="YOUR_GATEWAY",',
    '    messages=[{"role": "user", "content": "Hello!"}],',
    ")",
    "print(answer.choices[0].message.content)",
  ].join("\n");
  return h(
    "div",
    { class: "empty overview-empty" },
    h("h2", {}, "No requests yet"),
    h("p", {}, "This page shows what your gateways spend, how many requests they answer, how fast and how often they fail. It fills in with your first request."),
    h(
      "ol",
      { class: "overview-steps" },
      h("li", {}, h("a", { href: "#/gateways" }, "Create a gateway"), ": a model, its instructions and knowledge, behind one name."),
      h("li", {}, h("a", { href: "#/keys" }, "Create a key"), " for your application (or use this admin key)."),
      h("li", {}, h("a", { href: "#/playground" }, "Try it in the Playground"), ", or call it with any OpenAI client:"),
    ),
    h("div", { class: "snippet" }, h("pre", {}, h("code", {}, code)), copyButton(code)),
  );
}

function quiet(ctx, days) {
  const longer = PERIODS.find(([n]) => n > days);
  return emptyState(
    "No requests in this period",
    "Your gateways answered nothing in these days. Older requests are in the request log.",
    h(
      "div",
      { class: "row overview-quiet" },
      longer && h("button", { type: "button", class: "primary", onclick: () => ctx.navigate(`overview/${longer[0]}`) }, `Show the ${longer[1].toLowerCase()}`),
      h("a", { class: "button", href: "#/requests" }, "Open the request log"),
    ),
  );
}
