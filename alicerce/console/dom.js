// Building the page: elements from plain data, text always as text.
//
// Nothing here (or anywhere in the console) assigns innerHTML or builds markup from strings:
// every name, document text, chunk, model answer and function output reaches the page as a
// text node, so a string like "<img src=x onerror=...>" is shown, never run.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An element: `h("button", {class: "primary", onclick: save}, "Save")`.
 * Attributes: `class`, `for`, `aria-*`, `data-*` and the rest are set as attributes; `on<event>`
 * functions become listeners; `value`, `checked`, `disabled`, `selected` are set as
 * properties. Children: strings and numbers become text, null/false/undefined are skipped,
 * arrays are flattened.
 */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, for the charts. */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "indeterminate"]);

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (PROPERTIES.has(name)) {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

/** Appends children (text, elements, arrays of them) to `element`. */
export function append(element, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces what `element` holds. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

let ids = 0;
/** A fresh id for tying a label to its control. */
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

// -- formatting -----------------------------------------------------------------------------

/** An amount of money, with as many decimals as it needs (prices are fractions of a cent). */
export function money(amount, currency = "USD") {
  const value = Number(amount || 0);
  const digits = value === 0 ? 2 : Math.min(8, Math.max(2, 2 - Math.floor(Math.log10(Math.abs(value))) + 2));
  return `${value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: digits })} ${currency}`;
}

export function number(value) {
  return Number(value || 0).toLocaleString();
}

export function ms(value) {
  if (value === null || value === undefined) return "—";
  return value >= 10000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value).toLocaleString()} ms`;
}

/** A timestamp (ISO string or Unix seconds) as local date and time. */
export function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function bytes(value) {
  const units = ["B", "KB", "MB", "GB"];
  let size = Number(value || 0);
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? size : size.toFixed(1)} ${units[unit]}`;
}

// -- common pieces --------------------------------------------------------------------------

/** A button that copies `text` and says so. */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "small" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(typeof text === "function" ? text() : text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => (button.textContent = label), 1500);
  });
  return button;
}

/** What a page shows when it has nothing yet: what it is, and the first thing to do. */
export function emptyState(title, text, action = null) {
  return h("div", { class: "empty" }, h("h3", {}, title), h("p", {}, text), action);
}

/**
 * A table: `columns` are `{label, cell: row => node|string, class?}`; `onRow` makes rows
 * clickable (and reachable by keyboard).
 */
export function table(columns, rows, { onRow = null, caption = null } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)));
  const body = rows.map((row) => {
    const tr = h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.cell(row))));
    if (onRow) {
      tr.classList.add("clickable");
      tr.tabIndex = 0;
      tr.addEventListener("click", (event) => {
        if (!event.target.closest("button, a, input, select")) onRow(row);
      });
      tr.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && event.target === tr) onRow(row);
      });
    }
    return tr;
  });
  return h(
    "div",
    { class: "table-wrap" },
    h("table", {}, caption && h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body)),
  );
}

/** One term of a definition list (`<dl class="details-grid">`): its label and its value. */
export function term(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

/** A status as a coloured badge (`ready`, `failed`, `2xx`...). */
export function badge(text, tone = "") {
  return h("span", { class: `badge ${tone}` }, text);
}

export function statusTone(status) {
  if (["ready", "active", "ok"].includes(status) || (status >= 200 && status < 300)) return "good";
  if (["failed", "error", "revoked", "expired"].includes(status) || status >= 400) return "bad";
  return "pending";
}

// -- dialogs and notices --------------------------------------------------------------------

/** A modal dialog (the native <dialog>: focus is trapped and Escape closes it). */
export function dialog(title, body, actions) {
  const titleId = uid("dialog");
  const element = h(
    "dialog",
    { "aria-labelledby": titleId },
    h("h2", { id: titleId }, title),
    h("div", { class: "dialog-body" }, body),
    h("div", { class: "actions" }, actions),
  );
  element.addEventListener("close", () => element.remove());
  document.body.append(element);
  element.showModal();
  return element;
}

/** Asks before something that cannot be undone; resolves true when confirmed. */
export function confirmAction(title, text, confirmLabel = "Delete") {
  return new Promise((resolve) => {
    let answer = false;
    const yes = h("button", { type: "button", class: "danger" }, confirmLabel);
    const no = h("button", { type: "button" }, "Cancel");
    const element = dialog(title, h("p", {}, text), [no, yes]);
    yes.addEventListener("click", () => {
      answer = true;
      element.close();
    });
    no.addEventListener("click", () => element.close());
    element.addEventListener("close", () => resolve(answer));
    no.focus();
  });
}

/** Shows a secret once, with a copy button, and says it will not be shown again. */
export function showSecret(title, secret, note = "Copy it now: it is shown this once.") {
  const done = h("button", { type: "button", class: "primary" }, "Done");
  const element = dialog(
    title,
    [h("p", {}, note), h("div", { class: "secret" }, h("code", { "data-secret": "" }, secret), copyButton(secret))],
    [done],
  );
  done.addEventListener("click", () => element.close());
  return element;
}

/** A short notice at the bottom of the screen, read out by screen readers. */
export function toast(text, tone = "") {
  let region = document.getElementById("toasts");
  if (!region) {
    region = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const item = h("div", { class: `toast ${tone}` }, text);
  region.append(item);
  setTimeout(() => item.remove(), 4000);
}
