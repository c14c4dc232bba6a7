// The shell: sign-in gate, the browser-side router over /ui/... paths, and the top bar.
import { h } from "./format.js";
import { api, ApiError, session, whenUnauthorized } from "./session.js";

const ROUTES = [
  [/^\/ui\/?$/, "executions", () => import("./runs.js").then((m) => m.runsPage)],
  [/^\/ui\/executions\/?$/, "executions", () => import("./runs.js").then((m) => m.runsPage)],
  [/^\/ui\/executions\/([^/]+)$/, "executions", () => import("./run.js").then((m) => m.runPage)],
  [/^\/ui\/usage\/?$/, "usage", () => import("./usage.js").then((m) => m.usagePage)],
  [/^\/ui\/workflows\/?$/, "workflows", () => import("./workflows.js").then((m) => m.workflowsPage)],
  [/^\/ui\/workflows\/([^/]+)$/, "workflows", () => import("./workflows.js").then((m) => m.workflowPage)],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const signOutButton = document.getElementById("sign-out");
let leavePage = null;
let generation = 0;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

function signedIn(org) {
  nav.hidden = false;
  signOutButton.hidden = false;
  who.textContent = `organization ${org}`;
}

function signOut() {
  session.signOut();
  leave();
  nav.hidden = true;
  signOutButton.hidden = true;
  who.textContent = "";
  renderSignIn();
}

function leave() {
  if (leavePage) leavePage();
  leavePage = null;
  generation += 1;
}

function renderSignIn(message) {
  const input = h("input", {
    id: "api_key",
    name: "api_key",
    type: "password",
    autocomplete: "off",
    required: true,
    spellcheck: "false",
  });
  const error = h("p", { class: "error", role: "alert", id: "sign-in-error" }, message ?? "");
  const form = h(
    "form",
    { class: "sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in to spanline"),
    h("label", { for: "api_key" }, "API key"),
    input,
    h("p", { class: "muted" }, "The key stays in this tab (session storage) and is sent only as a request header."),
    h("button", { type: "submit" }, "Sign in"),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    try {
      const org = await api("/v1/organization", { key });
      session.signIn(key);
      signedIn(org.id);
      render();
    } catch (failure) {
      error.textContent =
        failure instanceof ApiError && failure.status === 401 ? "That API key was not accepted." : String(failure);
    }
  });
  main.replaceChildren(form);
  input.focus();
}

async function render() {
  leave();
  const mine = generation;
  if (!session.key()) {
    renderSignIn();
    return;
  }
  const path = location.pathname;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of nav.querySelectorAll("a")) {
    if (route !== undefined && link.dataset.section === route[1]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!route) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, `No page at ${path}.`));
    return;
  }
  const params = route[0].exec(path).slice(1).map(decodeURIComponent);
  const page = await route[2]();
  if (mine !== generation) return;
  const controller = new AbortController();
  const cleanup = page(main, params, { signal: controller.signal, navigate });
  leavePage = () => {
    controller.abort();
    if (typeof cleanup === "function") cleanup();
  };
}

// Same-origin /ui/ links route in the page; modified clicks keep the browser's behaviour.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/ui/") || url.pathname.startsWith("/ui/static/"))
    return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);
signOutButton.addEventListener("click", signOut);
whenUnauthorized(() => {
  signOut();
  main.querySelector("#sign-in-error").textContent = "Your API key is no longer accepted; sign in again.";
});

// A returning tab renders its page at once; the key check runs beside it (a 401 signs the tab out).
if (session.key()) {
  api("/v1/organization")
    .then((org) => signedIn(org.id))
    .catch(() => {});
}
render();
