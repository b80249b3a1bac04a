// Form pieces the Gateways and Keys pages share, beside `forms.js` (and candidates for it):
// an API error shown beside its field without repeating the field's name, errors that go
// when their field changes, groups of checkboxes and JSON textareas known by their API
// `param`, and the JSON merge patch (RFC 7396) an edit sends.

import { h, replace, uid } from "../dom.js";

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

/** A textarea holding `value` as JSON (empty for null). */
export function jsonArea(value, attrs = {}) {
  const area = h("textarea", { spellcheck: "false", ...attrs });
  area.value = value === null || value === undefined ? "" : JSON.stringify(value, null, 2);
  return area;
}

/** The JSON object in `area` (null when empty), or throws `{param, message}` for the form. */
export function readJson(area, param, { object = true } = {}) {
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

/** A number input; empty is "not set" (`numberOrNull`). */
export function numberInput(value, attrs = {}) {
  return h("input", { type: "number", step: "any", inputmode: "decimal", value: value ?? "", ...attrs });
}

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
