// One column of the playground: a gateway picker and a conversation with that gateway, which
// streams its answers and keeps its own history (two columns compare two gateways on the same
// questions, each with the turns it answered itself).

import { get, streamChat } from "../api.js";
import { h, ms, replace } from "../dom.js";
import { select } from "../forms.js";
import { answerDetails, sumDecimals } from "./answer_details.js";

/** What the request log calls playground traffic (`metadata.source`), for the Requests page. */
const SOURCE = "console.playground";

export class ChatColumn {
  /**
   * `gateways`: GET /gateways' list; `selected`: the id to start on; `name`: "A" or "B";
   * `onChange({refocus})`: the gateway or the busy state changed (`refocus`: the focused Stop
   * button is gone, so the question box should take the focus); `signal`: aborted when the page is left.
   */
  constructor({ gateways, selected, name, onChange, signal }) {
    this.gateways = gateways;
    this.name = name;
    this.onChange = onChange;
    this.signal = signal;
    this.turns = [];
    this.controller = null;
    this.picker = select(
      gateways.map((g) => [g.id, g.name]),
      selected,
      { id: `pg-gateway-${name}`, name: `gateway-${name}` },
    );
    this.picker.addEventListener("change", () => {
      this.showGateway();
      onChange();
    });
    this.label = h("label", { for: this.picker.id }, "Gateway");
    this.meta = h("p", { class: "pg-gateway-meta" });
    this.totals = h("p", { class: "pg-totals", hidden: true });
    this.transcript = h("ol", { class: "pg-transcript", "aria-label": "Conversation" });
    this.placeholder = h(
      "div",
      { class: "pg-placeholder" },
      h("p", {}, "Ask something below."),
      h("p", { class: "muted" }, "Under each answer: its priced line items, the knowledge chunks the model read, the functions it ran, how it was routed, and its timing."),
    );
    this.element = h(
      "section",
      { class: "card pg-column", "data-column": name },
      h("div", { class: "pg-column-head" }, h("div", { class: "field" }, this.label, this.picker), this.meta, this.totals),
      this.placeholder,
      this.transcript,
    );
    signal.addEventListener("abort", () => this.stop());
    this.showGateway();
  }

  get gateway() {
    return this.gateways.find((g) => g.id === this.picker.value);
  }

  get busy() {
    return this.controller !== null;
  }

  /** Names the column ("Gateway A") when there are two, so each picker's label is its own. */
  setCompared(compared) {
    this.label.textContent = compared ? `Gateway ${this.name}` : "Gateway";
    this.element.setAttribute("aria-label", compared ? `Column ${this.name}` : "Conversation");
  }

  showGateway() {
    const gateway = this.gateway;
    replace(this.meta, describe(gateway), " · ", h("a", { href: `#/gateways/${encodeURIComponent(gateway.id)}` }, "Open gateway"));
  }

  /** Forgets the conversation (and stops an answer still coming). */
  clear() {
    this.stop();
    this.turns = [];
    replace(this.transcript);
    this.placeholder.hidden = false;
    this.showTotals();
  }

  /** The conversation's sums, so two columns compare at a glance: cost, tokens, latency. */
  showTotals() {
    const answers = this.turns.map((turn) => turn.answer).filter((answer) => answer.status !== "streaming");
    this.totals.hidden = answers.length === 0;
    if (!answers.length) return replace(this.totals);
    const items = answers.flatMap((answer) => (answer.context && answer.context.generated_usage) || answer.billed || []);
    const currency = (answers.find((answer) => answer.context) || { context: { currency: "USD" } }).context.currency;
    const tokens = answers.reduce((sum, answer) => sum + tokenCount(answer), 0);
    const latency = answers.reduce((sum, answer) => sum + (answer.timing.end - answer.timing.start), 0) / answers.length;
    replace(
      this.totals,
      h("span", {}, answers.length === 1 ? "1 answer" : `${answers.length} answers`),
      h("span", {}, h("strong", { "data-conversation-total": "" }, `${sumDecimals(items.map((item) => item.amount))} ${currency}`)),
      h("span", {}, `${tokens.toLocaleString()} tokens`),
      h("span", {}, `${ms(latency)} on average`),
    );
  }

  stop() {
    if (this.controller) this.controller.abort();
  }

  /** The conversation so far, as the API takes it: the turns that got an answer. */
  history() {
    const messages = [];
    for (const { question, answer } of this.turns) {
      if (answer.status === "failed" || answer.status === "streaming") continue;
      if (answer.status === "stopped" && !answer.text) continue;
      messages.push({ role: "user", content: question }, { role: "assistant", content: answer.text });
    }
    return messages;
  }

  /** Sends `question` after this column's history and streams the answer into a new turn. */
  async ask(question) {
    const gateway = this.gateway;
    const messages = [...this.history(), { role: "user", content: question }];
    const answer = {
      gateway,
      text: "",
      status: "streaming",
      error: null,
      requestId: null,
      served: {},
      upstreamModel: null,
      usage: null,
      context: null,
      timing: { start: performance.now(), firstToken: null, end: null },
    };
    this.turns.push({ question, answer });
    const view = new TurnView(question, answer, () => this.stop());
    this.placeholder.hidden = true;
    this.transcript.append(view.element);
    view.element.scrollIntoView({ block: "nearest" });
    this.controller = new AbortController();
    this.onChange();
    try {
      await streamChat(
        { model: gateway.id, messages, metadata: { source: SOURCE } },
        {
          signal: this.controller.signal,
          onOpen: ({ requestId, headers }) => {
            answer.requestId = requestId;
            answer.served = {
              model: headers.get("x-alicerce-model"),
              complexity: headers.get("x-alicerce-routed-complexity"),
              routingFallback: headers.get("x-alicerce-routing-fallback") === "true",
            };
          },
          onChunk: (chunk) => {
            if (chunk.model) answer.upstreamModel = chunk.model;
            for (const choice of chunk.choices || []) {
              const piece = choice.delta && choice.delta.content;
              if (!piece) continue;
              if (answer.timing.firstToken === null) answer.timing.firstToken = performance.now();
              answer.text += piece;
              view.grow(piece);
            }
            if (chunk.usage) answer.usage = chunk.usage;
            if (chunk.generation_context) answer.context = chunk.generation_context;
          },
        },
      );
      answer.status = "done";
    } catch (err) {
      if (err.name === "AbortError") {
        answer.status = "stopped";
      } else {
        answer.status = "failed";
        answer.error = err;
      }
    } finally {
      answer.timing.end = performance.now();
      this.controller = null;
    }
    const stopFocused = document.activeElement === view.stopButton;
    const details = view.finish();
    this.showTotals();
    this.onChange({ refocus: stopFocused });
    if (!answer.requestId || this.signal.aborted) return;
    const record = await this.serverRecord(answer.requestId, gateway.id);
    if (record && !answer.context) answer.billed = record.line_items;
    answer.record = record;
    details.setServer(record);
    this.showTotals();
  }

  /** The request log's record of this answer (written a moment after it ends), or null. */
  async serverRecord(requestId, gatewayId) {
    for (let attempt = 1; attempt <= 6; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 120 * attempt));
      if (this.signal.aborted) return null;
      try {
        const { data } = await get("/requests", { gateway: gatewayId, limit: 20 }, { signal: this.signal });
        const found = data.find((record) => record.id === requestId);
        if (found) return found;
      } catch (err) {
        if (err.name === "AbortError") return null;
      }
    }
    return null;
  }
}

/** An answer's tokens: from its usage chunk, else (stopped) from the request log. */
function tokenCount(answer) {
  if (answer.usage) return answer.usage.total_tokens;
  const logged = answer.record && answer.record.usage;
  return logged ? logged.prompt_tokens + logged.completion_tokens : 0;
}

/** One line about what a gateway does: its model, routing, knowledge and functions. */
function describe(gateway) {
  const parts = [];
  if (gateway.endpoint) parts.push(`own endpoint (${gateway.endpoint.model})`);
  else if (gateway.model === "@auto" && gateway.routing) parts.push(`@auto over ${gateway.routing.tiers.length} tiers`);
  else parts.push(gateway.model);
  const knowledge = gateway.knowledge || {};
  if (knowledge.strategy && knowledge.strategy !== "none") {
    const count = (knowledge.collections || []).length;
    parts.push(`knowledge: ${knowledge.strategy}, ${count === 1 ? "1 collection" : `${count} collections`}`);
  }
  const functions = (gateway.functions || []).length;
  if (functions) parts.push(functions === 1 ? "1 function" : `${functions} functions`);
  return h("span", {}, parts.map((part, i) => [i ? " · " : "", i ? part : h("code", {}, part)]));
}

/** A question and its answer as they are shown: the answer grows as its tokens come. */
class TurnView {
  constructor(question, answer, stop) {
    this.answer = answer;
    this.text = document.createTextNode("");
    this.caret = h("span", { class: "pg-caret", "aria-hidden": "true" });
    this.bubble = h("div", { class: "pg-bubble", "aria-busy": "true" }, this.text, this.caret);
    this.stopButton = h("button", { type: "button", class: "small", onclick: stop, "aria-label": `Stop the answer of ${answer.gateway.name}` }, h("span", { class: "pg-stop-icon", "aria-hidden": "true" }), "Stop");
    this.statusText = h("span", {}, "Waiting for the first token…");
    this.status = h("div", { class: "pg-status", role: "status" }, h("span", { class: "pg-spinner", "aria-hidden": "true" }), this.statusText, this.stopButton);
    this.slot = h("div");
    this.element = h(
      "li",
      { class: "pg-turn", "data-status": "streaming" },
      h("div", { class: "pg-msg pg-user" }, h("div", { class: "pg-who" }, "You"), h("div", { class: "pg-bubble" }, question)),
      h(
        "div",
        { class: "pg-msg pg-assistant" },
        h("div", { class: "pg-who" }, answer.gateway.name),
        this.bubble,
        this.status,
        this.slot,
      ),
    );
  }

  grow(piece) {
    const root = document.documentElement;
    const following = window.innerHeight + window.scrollY >= root.scrollHeight - 48;
    if (this.text.length === 0) this.statusText.textContent = "Answering…";
    this.text.appendData(piece);
    if (following) window.scrollTo(0, root.scrollHeight);
  }

  /** Shows how the answer ended and what came with it; returns its details. */
  finish() {
    const answer = this.answer;
    this.caret.remove();
    this.bubble.removeAttribute("aria-busy");
    this.element.dataset.status = answer.status;
    if (!answer.text) this.bubble.append(h("span", { class: "muted" }, answer.status === "failed" ? "No answer." : "(no text)"));
    const elapsed = ms(answer.timing.end - answer.timing.start);
    if (answer.status === "done") {
      replace(this.status, h("span", { class: "badge good" }, "Done"), h("span", { class: "muted" }, elapsed));
    } else if (answer.status === "stopped") {
      replace(this.status, h("span", { class: "badge pending" }, "Stopped"), h("span", { class: "muted" }, `You stopped it after ${elapsed}; the request was cancelled.`));
    } else {
      const error = answer.error;
      const status = error.status ? `${error.status}${error.code ? ` ${error.code}` : ""}` : "error";
      replace(this.status, h("span", { class: "badge bad" }, "Failed"), h("span", { class: "pg-error", role: "alert" }, `${status}: ${error.message}`));
    }
    const details = answerDetails(answer);
    if (answer.requestId) replace(this.slot, details.element);
    return details;
  }
}
