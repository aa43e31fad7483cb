// The console's page: routes (#/sessions, #/session/ID, #/turn/ID, #/audit, #/plugins),
// the token prompt, and the live stream that refreshes the open view when a turn of it
// arrives.
//
// Plain ES modules, no framework and no build step: the page is small (a few views of
// tables and one waterfall), ships inside the wheel as it is written, works offline and
// has nothing to update or audit but itself.

import { Unauthorized, follow, get, setToken, token } from "./api.js";
import { h } from "./dom.js";
import * as lists from "./lists.js";
import * as session from "./session.js";
import * as sessions from "./sessions.js";
import * as turn from "./turn.js";

const view = document.getElementById("view");
let info = null;
let rendering = Promise.resolve();

function route() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const params = Object.fromEntries(new URLSearchParams(query));
  const [name, id] = path.split("/").map(decodeURIComponent);
  switch (name) {
    case "session": return { name, render: () => session.render({ ...params, id }, info), id };
    case "turn": return { name, render: () => turn.render({ ...params, id }), id };
    case "audit": return { name, render: () => lists.audit(params) };
    case "plugins": return { name, render: () => lists.plugins() };
    default: return { name: "sessions", render: () => sessions.render(params), params };
  }
}

async function show() {
  const current = route();
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === current.name || (current.name !== "audit" && current.name !== "plugins" && link.dataset.view === "sessions"));
  }
  const typed = document.getElementById("message-text")?.value;
  const said = document.getElementById("send-status")?.textContent;
  try {
    const content = await current.render();
    view.replaceChildren(...[content].flat(Infinity).filter(Boolean));
    view.dataset.view = current.name;
    const box = document.getElementById("message-text");
    if (box && typed) box.value = typed;
    const status = document.getElementById("send-status");
    if (status && said) status.textContent = said;
  } catch (error) {
    if (error instanceof Unauthorized) return ask(error.message);
    view.replaceChildren(h("h1", {}, "Not found"), h("p", { class: "error", id: "error" }, error.message),
      h("p", {}, h("a", { href: "#/sessions" }, "back to the sessions")));
    view.dataset.view = "error";
  }
}

function refresh() {
  rendering = rendering.then(show);
  return rendering;
}

function ask(problem) {
  const dialog = document.getElementById("token-dialog");
  document.getElementById("token-error").textContent = token() ? problem : "";
  if (!dialog.open) dialog.showModal();
}

document.getElementById("token-form").addEventListener("submit", () => {
  setToken(document.getElementById("token-input").value.trim());
  start();
});

function onTurn(changed) {
  const live = document.getElementById("live");
  live.textContent = `live: turn ${changed.number} ${changed.status}`;
  live.classList.add("flash");
  setTimeout(() => live.classList.remove("flash"), 600);
  const current = route();
  const relevant = current.name === "sessions" ? !current.params.after
    : current.name === "session" ? current.id === changed.session_id
    : current.name === "turn" ? current.id === changed.turn_id : false;
  if (relevant) refresh();
}

async function start() {
  try {
    info = await get("info");
  } catch (error) {
    if (error instanceof Unauthorized) return ask(error.message);
    view.replaceChildren(h("p", { class: "error" }, error.message));
    return;
  }
  document.getElementById("mode").textContent = info.read_only
    ? `read-only · ${info.store}` : `agent ${info.agent_id} · ${info.store}`;
  document.body.classList.toggle("read-only", info.read_only);
  window.addEventListener("hashchange", refresh);
  await refresh();
  follow(info.now, onTurn, (state) => { document.getElementById("live").dataset.state = state; })
    .catch((error) => ask(error.message));
}

start();
