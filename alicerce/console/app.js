// The console's shell: log in with a key, the navigation, and the page the address names.
//
// Pages live in `pages/`, one module per page, each exporting `{title, render(ctx, params)}`:
// `render` returns the page's element (or a promise of it). `ctx` carries who is logged in,
// `navigate`, and `signal`, aborted when the page is left (for polling and streams).

import { ApiError, get, session } from "./api.js";
import { emptyState, h, replace, toast } from "./dom.js";
import { Form, busy } from "./forms.js";
import accounts from "./pages/accounts.js";
import gateways from "./pages/gateways.js";
import keys from "./pages/keys.js";
import knowledge from "./pages/knowledge.js";
import overview from "./pages/overview.js";
import playground from "./pages/playground.js";
import requests from "./pages/requests.js";

const PAGES = { overview, gateways, playground, knowledge, keys, requests, accounts };
const ACCOUNT_PAGES = ["overview", "gateways", "playground", "knowledge", "keys", "requests"];

const root = document.getElementById("app");
let me = null; // GET /me: {role, key, account}
let leaving = null; // aborts the current page's work when another is shown

/** The route in the address: `#/gateways/gw_1` is page `gateways` with params `["gw_1"]`. */
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "", params: parts.slice(1) };
}

export function navigate(path) {
  location.hash = `#/${path}`;
}

async function start() {
  if (!session.key()) return showLogin();
  try {
    me = await get("/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      session.clear();
      return showLogin("That key is no longer valid. Log in again.");
    }
    return replace(root, emptyState("The server cannot be reached", err.message));
  }
  if (me.role === "inference") {
    session.clear();
    return showLogin(inferenceRefusal);
  }
  showPage();
}

const inferenceRefusal =
  "This is an inference key: it can call gateways, not manage them. Log in with an account's admin key or the operator's root key.";

function showLogin(notice = null) {
  document.title = "Log in · Alicerce";
  const form = new Form();
  const key = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false" });
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const element = h(
    "form",
    { class: "login card", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), "Alicerce console"),
    h("p", { class: "muted" }, "Log in with an account's admin key, or with the operator's root key. The key stays in this tab only."),
    notice && h("p", { class: "notice", role: "alert" }, notice),
    form.general,
    form.field("key", "API key", key, { hint: "It starts with alc_. `alicerce demo` prints one." }),
    submit,
  );
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(submit, async () => {
      const candidate = key.value.trim();
      try {
        const who = await get("/me", undefined, { key: candidate });
        if (who.role === "inference") return form.showError({ param: "key", message: inferenceRefusal });
        session.setKey(candidate);
        me = who;
        if (!route().page) navigate(who.role === "root" ? "accounts" : "overview");
        showPage();
      } catch (err) {
        form.showError({ param: "key", message: err.status === 401 ? "That key is not valid." : err.message });
      }
    });
  });
  replace(root, h("main", { class: "login-page" }, element));
  key.focus();
}

function logOut() {
  session.clear();
  me = null;
  if (leaving) leaving.abort();
  history.replaceState(null, "", location.pathname);
  showLogin();
}

function navigation(current) {
  const names = me.role === "root" ? ["accounts", ...(session.account() ? ACCOUNT_PAGES : [])] : ACCOUNT_PAGES;
  return h(
    "nav",
    { "aria-label": "Console" },
    h(
      "ul",
      {},
      names.map((name) =>
        h("li", {}, h("a", { href: `#/${name}`, "aria-current": name === current ? "page" : null }, PAGES[name].title)),
      ),
    ),
  );
}

function accountLabel() {
  if (me.role !== "root") return h("span", { class: "who" }, me.account.name, h("span", { class: "muted" }, ` · ${me.key.name}`));
  const acting = session.account();
  return h(
    "span",
    { class: "who" },
    "Root key",
    acting && h("span", { class: "muted" }, " · acting for "),
    acting && h("strong", { "data-acting": acting }, session.accountName() || acting),
  );
}

function header(current) {
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), "Alicerce"),
    navigation(current),
    h("div", { class: "session" }, accountLabel(), h("button", { type: "button", class: "small", onclick: logOut }, "Log out")),
  );
}

async function showPage() {
  if (!me) return start();
  let { page, params } = route();
  if (!PAGES[page]) page = me.role === "root" && !session.account() ? "accounts" : "overview";
  if (leaving) leaving.abort();
  leaving = new AbortController();
  const main = h("main", { id: "main", tabindex: "-1" });
  replace(root, h("a", { class: "skip", href: "#main", onclick: skipToMain }, "Skip to content"), header(page), main);
  document.title = `${PAGES[page].title} · Alicerce`;
  if (me.role === "root" && ACCOUNT_PAGES.includes(page) && !session.account()) {
    replace(main, emptyState("Choose an account", "The root key manages accounts. Pick one on the Accounts page to see its gateways, knowledge, keys and requests.", h("a", { class: "button primary", href: "#/accounts" }, "Accounts")));
    return;
  }
  const ctx = {
    me,
    role: me.role,
    account: me.role === "root" ? { id: session.account(), name: session.accountName() } : me.account,
    navigate,
    signal: leaving.signal,
    refresh: showPage,
    /** The root key acts for `account` ({id, name}; null: none) from the next page on. */
    actFor: (account) => session.setAccount(account),
  };
  replace(main, h("p", { class: "muted loading" }, "Loading…"));
  try {
    const element = await PAGES[page].render(ctx, params);
    if (!ctx.signal.aborted) replace(main, element);
  } catch (err) {
    if (err.name === "AbortError" || ctx.signal.aborted) return;
    if (err instanceof ApiError && err.status === 401) return logOut();
    replace(main, emptyState("This page could not be shown", err.message));
  }
}

function skipToMain(event) {
  event.preventDefault();
  document.getElementById("main").focus();
}

window.addEventListener("hashchange", () => showPage());
window.addEventListener("unhandledrejection", (event) => {
  if (event.reason && event.reason.name === "AbortError") return event.preventDefault();
  toast(event.reason && event.reason.message ? event.reason.message : "Something went wrong.", "bad");
});
start();
