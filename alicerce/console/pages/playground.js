// Playground: chat with a gateway as an application would (streamed, multi-turn), and see under
// each answer what Alicerce knows of it; "Compare" puts a second gateway beside the first, and
// one question goes to both.
//
// Routes: `#/playground`, `#/playground/<gateway>` and `#/playground/<gateway>/<gateway>`
// (compare). Picking a gateway rewrites the address without reloading the page, so the
// conversation stays.

import { get } from "../api.js";
import { emptyState, h } from "../dom.js";
import { ChatColumn } from "./playground_column.js";

export default {
  title: "Playground",
  async render(ctx, params) {
    if (ctx.role === "root") {
      return emptyState(
        "The root key cannot call models",
        "It acts for an account on admin routes only, so the playground has no key to chat with. Create an admin key for this account on the Keys page and log in with it: admin keys may call the account's gateways.",
        h("a", { class: "button primary", href: "#/keys" }, "Keys"),
      );
    }
    const { data: gateways } = await get("/gateways", undefined, { signal: ctx.signal });
    if (!gateways.length) {
      return emptyState(
        "No gateway to talk to yet",
        "A gateway is the model your applications call: its instructions, upstream model, knowledge and functions. Create one, then come back to chat with it.",
        h("a", { class: "button primary", href: "#/gateways" }, "Gateways"),
      );
    }
    return new Playground(ctx, gateways, params).element;
  },
};

/** A gateway named by id, slug or name. */
function findGateway(gateways, wanted) {
  return gateways.find((g) => g.id === wanted || g.slug === wanted || g.name === wanted);
}

class Playground {
  constructor(ctx, gateways, params) {
    this.ctx = ctx;
    this.gateways = gateways;
    const [first, second] = params.map((wanted) => findGateway(gateways, wanted));
    const missing = params.slice(0, 2).filter((wanted) => !findGateway(gateways, wanted));
    const a = first || gateways[0];
    this.secondChoice = second || gateways.find((g) => g.id !== a.id) || a;
    const onChange = (change) => this.update(change);
    this.columnA = new ChatColumn({ gateways, selected: a.id, name: "A", onChange, signal: ctx.signal });
    this.columnB = null;

    this.compare = h("button", { type: "button", class: "pg-toggle", "aria-pressed": "false", onclick: () => this.setCompare(!this.columnB) }, h("span", { class: "pg-toggle-track", "aria-hidden": "true" }), "Compare");
    this.newChat = h("button", { type: "button", onclick: () => this.clear() }, "New chat");
    this.columns = h("div", { class: "pg-columns" }, this.columnA.element);
    this.message = h("textarea", {
      id: "pg-message",
      name: "message",
      rows: 2,
      "aria-label": "Message",
      "aria-describedby": "pg-message-hint",
      placeholder: "Ask something…",
      onkeydown: (event) => this.onKey(event),
    });
    this.send = h("button", { type: "submit", class: "primary" }, "Send");
    const composer = h(
      "form",
      { class: "pg-composer", "aria-label": "Ask", onsubmit: (event) => this.submit(event) },
      h("div", { class: "pg-composer-box" }, this.message, this.send),
      h("p", { class: "hint", id: "pg-message-hint" }, "Enter sends · Shift+Enter starts a new line · Esc stops the answers. Answers are billed to this account like any request."),
    );
    this.element = h(
      "section",
      { class: "pg-page", "aria-labelledby": "pg-title" },
      h(
        "div",
        { class: "page-head" },
        h("div", {}, h("h1", { id: "pg-title" }, "Playground"), h("p", { class: "muted pg-intro" }, "Talk to a gateway as your applications do, and see what each answer cost, read and ran.")),
        h("div", { class: "row" }, this.compare, this.newChat),
      ),
      missing.length ? h("p", { class: "notice", role: "status" }, `No gateway “${missing.join("”, “")}” in this account: showing ${a.name}.`) : null,
      this.columns,
      composer,
    );
    if (second) this.setCompare(true);
    this.update();
  }

  get active() {
    return [this.columnA, this.columnB].filter(Boolean);
  }

  setCompare(on) {
    if (on && !this.columnB) {
      this.columnB = new ChatColumn({ gateways: this.gateways, selected: this.secondChoice.id, name: "B", onChange: (change) => this.update(change), signal: this.ctx.signal });
      this.columns.append(this.columnB.element);
    } else if (!on && this.columnB) {
      this.secondChoice = this.columnB.gateway;
      this.columnB.stop();
      this.columnB.element.remove();
      this.columnB = null;
    }
    this.update();
  }

  clear() {
    for (const column of this.active) column.clear();
    this.message.focus();
  }

  /** Keeps the address, the toggle, the labels and the Send button in step with the columns. */
  update({ refocus = false } = {}) {
    const compared = Boolean(this.columnB);
    this.compare.setAttribute("aria-pressed", String(compared));
    this.columns.classList.toggle("compared", compared);
    for (const column of this.active) column.setCompared(compared);
    this.send.disabled = this.active.some((column) => column.busy);
    const names = this.active.map((column) => column.gateway.name);
    this.message.placeholder = `Ask ${names.join(" and ")}…`;
    const path = ["playground", ...this.active.map((column) => column.gateway.id)].map(encodeURIComponent).join("/");
    if (this.ctx.signal.aborted) return;
    if (location.hash !== `#/${path}`) history.replaceState(null, "", `#/${path}`);
    if (refocus) this.message.focus();
  }

  onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.message.form.requestSubmit();
    } else if (event.key === "Escape") {
      for (const column of this.active) column.stop();
    }
  }

  submit(event) {
    event.preventDefault();
    const question = this.message.value.trim();
    if (!question || this.send.disabled) return;
    this.message.value = "";
    for (const column of this.active) column.ask(question);
    this.message.focus();
  }
}
