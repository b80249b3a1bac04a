// Keys: the account's API keys: create (the secret shown once), edit limits, revoke.

import { del, get, patch, post } from "../api.js";
import { badge, confirmAction, dialog, emptyState, h, money, number, replace, showSecret, table, toast, when } from "../dom.js";
import { Form, busy, input, numberOrNull, select } from "../forms.js";
import { checkGroup, clearOnInput, mergePatch, showApiError } from "./form_parts.js";

export default {
  title: "Keys",
  async render(ctx) {
    const body = h("div");
    const create = () => edit(null);
    const page = h(
      "section",
      { class: "keys-page", "aria-labelledby": "keys-title" },
      h(
        "div",
        { class: "page-head" },
        h("div", {}, h("h1", { id: "keys-title" }, "Keys"), h("p", { class: "muted lede" }, "Inference keys let your apps call gateways, within their limits; admin keys manage the account. A secret is shown once, when the key is made.")),
        h("button", { type: "button", class: "primary", onclick: create }, "New key"),
      ),
      body,
    );
    let gateways = [];
    let currency = "USD";

    async function load() {
      const [keys, gatewayList, catalog] = await Promise.all([
        get("/keys", undefined, { signal: ctx.signal }),
        get("/gateways", undefined, { signal: ctx.signal }),
        get("/catalog", undefined, { signal: ctx.signal }),
      ]);
      gateways = gatewayList.data;
      currency = catalog.currency;
      const names = new Map(gateways.map((g) => [g.id, g.name]));
      if (!keys.data.length) {
        return replace(
          body,
          emptyState("No keys yet", "Your apps call gateways with an inference key; an admin key manages the account. Create one; its secret is shown once.", h("button", { type: "button", class: "primary", onclick: create }, "New key")),
        );
      }
      const mine = ctx.me.key && ctx.me.key.id;
      replace(
        body,
        table(
          [
            { label: "Name", cell: (k) => h("div", {}, h("strong", {}, k.name), k.id === mine && h("div", {}, badge("this session", "pending"))) },
            { label: "Role", cell: (k) => badge(k.role, k.role === "admin" ? "pending" : "") },
            { label: "Prefix", cell: (k) => h("code", {}, k.prefix) },
            { label: "Gateways", cell: (k) => gatewayCell(k, names) },
            { label: "RPM", class: "num", cell: (k) => limit(k.rpm) },
            { label: "TPM", class: "num", cell: (k) => limit(k.tpm) },
            { label: "Monthly budget", class: "num", cell: (k) => (k.monthly_budget === null ? dash() : money(k.monthly_budget, currency)) },
            { label: "Expires", cell: expiry },
            { label: "Created", cell: (k) => when(k.created_at) },
            {
              label: "Actions",
              cell: (k) =>
                h(
                  "div",
                  { class: "row nowrap" },
                  h("button", { type: "button", class: "small", onclick: () => edit(k), "aria-label": `Edit ${k.name}` }, "Edit"),
                  h("button", { type: "button", class: "small danger", onclick: () => revoke(k), "aria-label": `Revoke ${k.name}` }, "Revoke"),
                ),
            },
          ],
          keys.data,
        ),
        h("p", { class: "hint" }, "Limits are checked on every request: past RPM or TPM a request gets 429, past the monthly budget 429 insufficient_quota. Changes apply within seconds."),
      );
    }

    function edit(key) {
      const form = new Form();
      const name = input({ value: key ? key.name : "", maxlength: 200, required: true, autocomplete: "off" });
      const role = select([["inference", "Inference: calls gateways"], ["admin", "Admin: manages the account"]], key ? key.role : "inference");
      const allowed = checkGroup(
        form,
        "gateways",
        "Gateways it may call",
        gateways.map((g) => [g.id, g.name]),
        key && key.gateways ? key.gateways : [],
        {
          hint: "None checked: every gateway of the account, and catalog models directly.",
          empty: h("p", { class: "hint" }, "No gateways yet: the key may call any gateway made later, and catalog models directly."),
        },
      );
      const rpm = h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", value: key ? key.rpm ?? "" : "", placeholder: "no limit" });
      const tpm = h("input", { type: "number", min: 1, step: 1, inputmode: "numeric", value: key ? key.tpm ?? "" : "", placeholder: "no limit" });
      const budget = h("input", { type: "number", min: 0, step: "any", inputmode: "decimal", value: key ? key.monthly_budget ?? "" : "", placeholder: "no limit" });
      const expires = h("input", { type: "datetime-local", value: key ? localTime(key.expires_at) : "" });
      const save = h("button", { type: "submit", class: "primary" }, key ? "Save" : "Create key");
      const cancel = h("button", { type: "button" }, "Cancel");
      const element = h(
        "form",
        { id: "key-form", novalidate: true, class: "key-form" },
        form.general,
        h("div", { class: "form-grid" }, form.field("name", "Name", name, { hint: "Where it is used, e.g. web-app." }), form.field("role", "Role", role)),
        allowed.element,
        h(
          "div",
          { class: "form-grid" },
          form.field("rpm", "Requests per minute", rpm),
          form.field("tpm", "Tokens per minute", tpm),
          form.field("monthly_budget", `Monthly budget (${currency})`, budget, { hint: "In the catalog's prices, per calendar month (UTC)." }),
          form.field("expires_at", "Expires", expires, { hint: "Your local time; empty: never." }),
        ),
      );
      save.setAttribute("form", "key-form");
      const modal = dialog(key ? `Edit ${key.name}` : "New key", element, [cancel, save]);
      cancel.addEventListener("click", () => modal.close());
      element.addEventListener("submit", (event) => {
        event.preventDefault();
        busy(save, async () => {
          form.clear();
          const chosen = allowed.values();
          const expiry = expires.value ? new Date(expires.value) : null;
          const value = {
            name: name.value.trim(),
            role: role.value,
            // none checked is every gateway (null), unless the key was already limited to none
            gateways: chosen.length ? chosen : key && Array.isArray(key.gateways) && key.gateways.length === 0 ? [] : null,
            rpm: numberOrNull(rpm),
            tpm: numberOrNull(tpm),
            monthly_budget: numberOrNull(budget),
            expires_at: expiry && !Number.isNaN(expiry.getTime()) ? expiry.toISOString() : null,
          };
          try {
            if (key) {
              const before = { ...key, expires_at: key.expires_at ? new Date(key.expires_at).toISOString() : null };
              if (localTime(key.expires_at) === expires.value) value.expires_at = before.expires_at; // minutes only
              const changes = mergePatch(before, value);
              if (Object.keys(changes).length) await patch(`/keys/${encodeURIComponent(key.id)}`, changes);
              modal.close();
              toast(Object.keys(changes).length ? `${value.name} saved.` : "Nothing changed.");
            } else {
              const created = await post("/keys", Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null)));
              modal.close();
              showSecret(`${created.name}: its secret`, created.key, "Use it as the bearer token (ALICERCE_API_KEY in the gateways' examples). Copy it now: it is shown this once.");
            }
            await load();
          } catch (err) {
            showApiError(form, err);
          }
        });
      });
      clearOnInput(form, element);
      name.focus();
    }

    async function revoke(key) {
      const own = ctx.me.key && ctx.me.key.id === key.id;
      const sure = await confirmAction(
        `Revoke ${key.name}?`,
        own
          ? "This is the key this console is logged in with: you will be logged out. Requests with it are refused from now on. This cannot be undone."
          : `Requests with ${key.prefix} are refused from now on. This cannot be undone.`,
        "Revoke",
      );
      if (!sure) return;
      try {
        await del(`/keys/${encodeURIComponent(key.id)}`);
        toast(`${key.name} revoked.`);
        if (own) return ctx.refresh();
        await load();
      } catch (err) {
        toast(err.message, "bad");
      }
    }

    await load();
    return page;
  },
};

function dash() {
  return h("span", { class: "muted" }, "—");
}

function limit(value) {
  return value === null ? dash() : number(value);
}

function gatewayCell(key, names) {
  if (key.gateways === null) return h("span", { class: "muted" }, "All");
  if (!key.gateways.length) return h("span", { class: "muted" }, "None");
  return h("div", { class: "key-gateways" }, key.gateways.map((id) => badge(names.get(id) || "deleted gateway")));
}

function expiry(key) {
  if (!key.expires_at) return h("span", { class: "muted" }, "Never");
  const past = new Date(key.expires_at).getTime() <= Date.now();
  return h("div", {}, when(key.expires_at), past && h("div", {}, badge("expired", "bad")));
}

/** An RFC 3339 time as a datetime-local input's value (local time, to the minute). */
function localTime(value) {
  if (!value) return "";
  const date = new Date(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
