// The search tester: the query a gateway would send, in the mode and depth it would use, and
// what comes back — each hit's text, document, headings and calibrated score — so an
// operator can tell a collection that answers from one that drops the right passage.

import { post } from "../api.js";
import { badge, h, ms, number, replace } from "../dom.js";
import { Form, busy, input, numberOrNull, select } from "../forms.js";
import { clearOnInput, numberInput, showApiError } from "./form_parts.js";

const MODES = [
  ["hybrid", "Hybrid: meaning and words (the default)"],
  ["vector", "Vector: meaning only"],
  ["keyword", "Keyword: words only (BM25)"],
];

/** The tester's form and results for the collection whose search is at `path`. */
export function searchTester(path, signal) {
  const form = new Form();
  const query = input({ type: "search", required: true, maxlength: 4000, autocomplete: "off", placeholder: "A question your users would ask" });
  const mode = select(MODES, "hybrid");
  const topK = numberInput(5, { min: 1, max: 50, step: 1, inputmode: "numeric" });
  const minScore = numberInput(null, { min: 0, max: 1, step: 0.05, placeholder: "0" });
  const submit = h("button", { type: "submit", class: "primary" }, "Search");
  const results = h("div", { class: "search-results", "aria-live": "polite" });
  const element = h(
    "form",
    { class: "search-tester", novalidate: true, role: "search", "aria-label": "Search tester" },
    form.general,
    form.field("query", "Query", query),
    h(
      "div",
      { class: "form-grid" },
      form.field("mode", "Mode", mode),
      form.field("top_k", "Results (top_k)", topK),
      form.field("min_score", "Minimum score", minScore, { hint: "0–1; a gateway's min_score drops hits below it." }),
    ),
    h("div", { class: "row" }, submit, h("span", { class: "hint" }, "Each search is billed as one knowledge.search.")),
    results,
  );
  clearOnInput(form, element);
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, async () => {
      form.clear();
      if (!query.value.trim()) return form.showError({ param: "query", message: "Write what to search for." });
      const body = { query: query.value, mode: mode.value, top_k: numberOrNull(topK) ?? 5 };
      const floor = numberOrNull(minScore);
      if (floor !== null) body.min_score = floor;
      const started = performance.now();
      try {
        const answer = await post(path, body, { signal });
        showHits(results, answer, performance.now() - started);
        results.dataset.query = body.query; // what the hits shown answer
      } catch (err) {
        if (err.name === "AbortError") return;
        replace(results);
        showApiError(form, err);
      }
    });
  });
  return element;
}

function showHits(results, answer, elapsed) {
  const summary = h("p", { class: "muted" }, `${number(answer.data.length)} hit${answer.data.length === 1 ? "" : "s"} in ${ms(elapsed)} · the query was ${number(answer.usage.query_tokens)} tokens.`);
  if (!answer.data.length) {
    return replace(results, summary, h("p", {}, "Nothing matched. Try the other modes, a lower minimum score, or check that the documents are ready."));
  }
  replace(
    results,
    summary,
    h(
      "ol",
      { class: "hits" },
      answer.data.map((hit, index) =>
        h(
          "li",
          { class: "hit", "data-document": hit.document_name },
          h(
            "div",
            { class: "row hit-head" },
            h("span", { class: "muted" }, `#${index + 1}`),
            h("strong", { class: "doc-name" }, hit.document_name),
            badge(`score ${hit.score.toFixed(3)}`, hit.score >= 0.5 ? "good" : "pending"),
          ),
          hit.heading_path && hit.heading_path.length ? h("div", { class: "hint" }, hit.heading_path.join(" › ")) : null,
          h("div", { class: "quoted hit-text" }, hit.text),
        ),
      ),
    ),
  );
}
