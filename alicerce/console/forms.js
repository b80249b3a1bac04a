// Forms: labelled fields, and the API's 400 shown beside the field its `param` names.

import { h, replace, uid } from "./dom.js";

/**
 * A set of fields, each known by the API name it feeds (`name`, `parameters.temperature`,
 * `endpoint.base_url`), so that an error whose `param` names it is shown beside it.
 */
export class Form {
  constructor() {
    this.fields = new Map();
    this.general = h("div", { class: "form-error", role: "alert" });
  }

  /**
   * A labelled control. `param` is the API field it feeds; `hint` is shown under it.
   * Returns the wrapper to put in the page.
   */
  field(param, label, control, { hint = null, inline = false } = {}) {
    const id = control.id || uid("field");
    control.id = id;
    const error = h("div", { class: "field-error", id: `${id}-error`, role: "alert" });
    const hintNode = hint ? h("div", { class: "hint", id: `${id}-hint` }, hint) : null;
    control.setAttribute("aria-describedby", [hintNode && `${id}-hint`, `${id}-error`].filter(Boolean).join(" "));
    const wrapper = h(
      "div",
      { class: inline ? "field inline" : "field", "data-param": param },
      h("label", { for: id }, label),
      control,
      hintNode,
      error,
    );
    this.fields.set(param, { control, error, wrapper });
    return wrapper;
  }

  /** Clears every error shown. */
  clear() {
    replace(this.general);
    for (const { control, error } of this.fields.values()) {
      replace(error);
      control.removeAttribute("aria-invalid");
    }
  }

  /**
   * Shows an API error beside the field its `param` names (or the closest enclosing field:
   * `parameters.temperature` falls back to `parameters`), else at the top of the form.
   */
  showError(err) {
    this.clear();
    const param = err && err.param;
    let target = null;
    if (param) {
      const parts = String(param).split(/[.[\]]+/).filter(Boolean);
      for (let n = parts.length; n > 0 && !target; n -= 1) {
        target = this.fields.get(parts.slice(0, n).join("."));
      }
    }
    const message = (err && err.message) || String(err);
    if (target) {
      replace(target.error, message);
      target.control.setAttribute("aria-invalid", "true");
      target.wrapper.scrollIntoView({ block: "center", behavior: "smooth" });
      target.control.focus({ preventScroll: true });
    } else {
      replace(this.general, message);
    }
  }
}

/** A text input. */
export function input(attrs = {}) {
  return h("input", { type: "text", ...attrs });
}

/** A <select> of `[value, label]` pairs (or plain values). */
export function select(options, value, attrs = {}) {
  return h(
    "select",
    attrs,
    options.map((option) => {
      const [v, label] = Array.isArray(option) ? option : [option, option];
      return h("option", { value: v, selected: String(v) === String(value) }, label);
    }),
  );
}

/** A number from an input, or null when it is empty. */
export function numberOrNull(control) {
  const text = control.value.trim();
  return text === "" ? null : Number(text);
}

/** A submit button that shows it is working and cannot be pressed twice. */
export async function busy(button, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}
