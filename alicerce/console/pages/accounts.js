// Accounts (root key): create, rename, delete; the first admin key shown once; act for one.

import { del, get, patch, post } from "../api.js";
import { confirmAction, dialog, emptyState, h, replace, showSecret, table, toast, when } from "../dom.js";
import { Form, busy, input } from "../forms.js";

export default {
  title: "Accounts",
  async render(ctx) {
    if (ctx.role !== "root") {
      return emptyState("Accounts need the root key", "An admin key manages its own account only. Log in with the operator's root key to manage accounts.");
    }
    const body = h("div");
    const page = h(
      "section",
      { "aria-labelledby": "accounts-title" },
      h("div", { class: "page-head" }, h("h1", { id: "accounts-title" }, "Accounts"), h("button", { type: "button", class: "primary", onclick: () => edit(null) }, "New account")),
      body,
    );

    async function load() {
      const { data } = await get("/accounts", undefined, { signal: ctx.signal });
      if (!data.length) {
        return replace(body, emptyState("No accounts yet", "An account owns gateways, knowledge, keys and usage. Create one; its first admin key is shown once.", h("button", { type: "button", class: "primary", onclick: () => edit(null) }, "New account")));
      }
      const acting = ctx.account && ctx.account.id;
      replace(
        body,
        table(
          [
            { label: "Name", cell: (a) => h("strong", {}, a.name) },
            { label: "Id", cell: (a) => h("code", {}, a.id) },
            { label: "Created", cell: (a) => when(a.created_at) },
            {
              label: "Actions",
              cell: (a) =>
                h(
                  "div",
                  { class: "row" },
                  a.id === acting
                    ? h("span", { class: "badge good" }, "acting for it")
                    : h("button", { type: "button", class: "small", onclick: () => actFor(a), "aria-label": `Open ${a.name}` }, "Open"),
                  h("button", { type: "button", class: "small", onclick: () => edit(a), "aria-label": `Rename ${a.name}` }, "Rename"),
                  h("button", { type: "button", class: "small danger", onclick: () => remove(a), "aria-label": `Delete ${a.name}` }, "Delete"),
                ),
            },
          ],
          data,
        ),
      );
    }

    function actFor(account) {
      ctx.actFor(account);
      ctx.navigate("overview");
    }

    function edit(account) {
      const form = new Form();
      const name = input({ name: "name", required: true, maxlength: 200, value: account ? account.name : "" });
      const save = h("button", { type: "submit", class: "primary" }, account ? "Rename" : "Create");
      const cancel = h("button", { type: "button" }, "Cancel");
      const element = h("form", {}, form.general, form.field("name", "Name", name));
      const modal = dialog(account ? `Rename ${account.name}` : "New account", element, [cancel, save]);
      save.setAttribute("form", (element.id = "account-form"));
      cancel.addEventListener("click", () => modal.close());
      element.addEventListener("submit", (event) => {
        event.preventDefault();
        busy(save, async () => {
          try {
            if (account) {
              await patch(`/accounts/${encodeURIComponent(account.id)}`, { name: name.value });
              modal.close();
              toast("Renamed.");
            } else {
              const created = await post("/accounts", { name: name.value });
              modal.close();
              showSecret(`${created.name}: its first admin key`, created.admin_key, "Give this admin key to the account's owner. Copy it now: it is shown this once.");
            }
            if (account && ctx.account && ctx.account.id === account.id) ctx.actFor({ id: account.id, name: name.value });
            await load();
          } catch (err) {
            form.showError(err);
          }
        });
      });
      name.focus();
    }

    async function remove(account) {
      const sure = await confirmAction(`Delete ${account.name}?`, "Its keys, gateways, collections and documents are deleted with it. This cannot be undone.");
      if (!sure) return;
      try {
        await del(`/accounts/${encodeURIComponent(account.id)}`);
        if (ctx.account && ctx.account.id === account.id) ctx.actFor(null);
        toast(`${account.name} deleted.`);
        ctx.refresh();
      } catch (err) {
        toast(err.message, "bad");
      }
    }

    await load();
    return page;
  },
};
