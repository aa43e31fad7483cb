// The session view: its messages (compressed ones, summaries and merge results marked),
// the fork tree around it, its turns (each opens its waterfall), the context contributed
// to it, the instructions its turns used, its audit trail; and, when an agent serves the
// console, a box sending a message to it as a turn.

import { download, get, post } from "./api.js";
import { h, messages, ms, sessionLink, short, table, tag, when } from "./dom.js";

export async function render(params, info) {
  const id = params.id;
  const data = await get(`sessions/${encodeURIComponent(id)}`);
  const s = data.session;
  const facts = h("dl", { class: "facts" },
    [["kind", s.kind], ["status", s.status], ["agent", s.agent_id], ["channel", s.metadata.channel],
     ["fork reason", s.metadata.fork_reason], ["created", when(s.created_at)], ["updated", when(s.updated_at)]]
      .filter(([, v]) => v).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  return [
    h("h1", {}, "Session ", h("code", { id: "session-id" }, s.session_id)),
    h("p", {}, h("button", { id: "export-session", onclick: () => download(`sessions/${encodeURIComponent(id)}/export.html`, `session-${id}.html`) }, "Export as HTML")),
    facts,
    h("section", { class: "columns" },
      h("div", {}, h("h2", {}, "Messages"), messages(data.messages), box(id, info)),
      h("div", {}, h("h2", {}, "Fork tree"), tree(data.tree, s),
        h("h2", {}, "Instructions"), instructions(data),
        h("h2", {}, "Contributed context"), context(data.context))),
    h("h2", {}, "Turns"), turns(data.turns),
    h("h2", {}, "Audit"), audit(data.audit),
  ];
}

function tree(around, session) {
  const node = (s, here, children = []) => h("li", { class: here ? "here" : "" },
    here ? h("b", {}, short(s.session_id)) : sessionLink(s), " ", tag(s.status),
    s.metadata?.fork_reason ? h("span", { class: "muted" }, ` ${s.metadata.fork_reason}`) : null,
    children.length ? h("ul", {}, children) : null);
  let nested = node(session, true, around.children.map((c) => node(c, false)));
  const level = [nested, ...around.siblings.map((s) => node(s, false))];
  let current = level;
  for (const ancestor of [...around.ancestors].reverse()) current = [node(ancestor, false, current)];
  return h("ul", { class: "tree", id: "fork-tree" }, current);
}

function instructions(data) {
  const used = [...new Set(data.turns.map((t) => t.instructions).filter((t) => t !== null))];
  return [
    data.instructions === null
      ? h("p", { class: "muted" }, "none of its own: its turns use the agent's")
      : h("pre", { class: "own-instructions" }, data.instructions),
    used.length ? h("details", {}, h("summary", {}, `the turns used ${used.length} text(s)`), used.map((t) => h("pre", {}, t))) : null,
  ];
}

function context(items) {
  if (!items.length) return h("p", { class: "muted" }, "none");
  return table(["key", "value", "by", "used by"], items.map((c) => h("tr", {},
    h("td", {}, c.key), h("td", {}, c.value), h("td", {}, c.extension_id),
    h("td", {}, c.consumed_by ? h("a", { href: `#/turn/${c.consumed_by}` }, short(c.consumed_by)) : "pending"))));
}

export function turns(list) {
  if (!list.length) return h("p", { class: "muted" }, "no turns");
  return table(["#", "turn", "status", "by", "took", "error"], list.map((t) => h("tr", { class: `turn-row turn-${t.status}`, "data-turn": t.turn_id },
    h("td", {}, t.number),
    h("td", {}, h("a", { href: `#/turn/${t.turn_id}`, class: "turn-link" }, short(t.turn_id))),
    h("td", {}, tag(t.status)), h("td", {}, t.initiator + (t.initiator_id ? `:${t.initiator_id}` : "")),
    h("td", {}, t.finished_at && t.started_at ? ms(t.finished_at - t.started_at) : ""),
    h("td", { class: "error" }, t.error ?? ""))));
}

export function audit(events) {
  if (!events.length) return h("p", { class: "muted" }, "none");
  return table(["at", "plugin", "action", "session", "detail"], events.map((e) => h("tr", { class: "audit-row" },
    h("td", { class: "muted" }, when(e.at)), h("td", {}, h("b", {}, e.extension_id)), h("td", {}, e.action),
    h("td", {}, sessionLink({ session_id: e.session_id })),
    h("td", {}, h("code", {}, JSON.stringify(e.detail))))));
}

function box(id, info) {
  if (info.read_only) return null;
  // A turn arriving live re-renders the view: the status line and the field are looked up
  // when written to, not kept, so the answer lands in the page that is shown then.
  const say = (text) => { document.getElementById("send-status").textContent = text; };
  return h("form", { id: "message-box", class: "box", onsubmit: async (event) => {
    event.preventDefault();
    const text = document.getElementById("message-text").value.trim();
    if (!text) return;
    say("sending…");
    try {
      const result = await post(`sessions/${encodeURIComponent(id)}/messages`, { text });
      document.getElementById("message-text").value = "";
      say(`turn ${result.turn.number}: ${result.turn.status}`);
    } catch (error) {
      say(error.message);
    }
  } },
    h("textarea", { id: "message-text", rows: 2, placeholder: "a message to this session" }),
    h("button", { type: "submit", id: "send" }, "Send"),
    h("p", { class: "muted", id: "send-status" }));
}
