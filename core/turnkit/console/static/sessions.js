// The sessions view: search (an id's start, or words of a message) and filters, newest
// activity first, one server-side page at a time (the next page resumes after the last
// row shown, so a store of any size answers as fast).

import { get } from "./api.js";
import { h, sessionLink, table, tag, when } from "./dom.js";

const FILTERS = [
  ["kind", ["", "chat", "task", "agent"]],
  ["status", ["", "active", "closed", "merged", "abandoned"]],
];

export async function render(params) {
  const page = await get("sessions", params);
  const form = h("form", { id: "search", class: "search", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const query = new URLSearchParams([...data].filter(([, v]) => v));
    location.hash = `#/sessions?${query}`;
  } },
    h("input", { name: "q", id: "search-text", value: params.q ?? "", placeholder: "id or words of a message", type: "search" }),
    FILTERS.map(([name, values]) => h("select", { name, id: `filter-${name}` },
      values.map((v) => h("option", { value: v, selected: (params[name] ?? "") === v }, v || `any ${name}`)))),
    h("input", { name: "agent", id: "filter-agent", value: params.agent ?? "", placeholder: "agent" }),
    h("input", { name: "channel", id: "filter-channel", value: params.channel ?? "", placeholder: "channel" }),
    h("button", { type: "submit" }, "Search"));
  const rows = page.sessions.map((s) => h("tr", { class: "session-row", "data-session": s.session_id },
    h("td", {}, sessionLink(s)),
    h("td", {}, s.kind), h("td", {}, tag(s.status)), h("td", {}, s.agent_id),
    h("td", {}, s.metadata.channel ?? ""),
    h("td", {}, s.parent_session_id ? h("span", {}, "fork of ", sessionLink({ session_id: s.parent_session_id })) : ""),
    h("td", { class: "muted" }, when(s.updated_at))));
  const { after, ...first } = params;
  const pager = h("p", { class: "pager" },
    after ? h("a", { href: `#/sessions?${new URLSearchParams(first)}`, id: "first-page" }, "« newest") : null,
    page.next ? h("a", { href: `#/sessions?${new URLSearchParams({ ...first, after: page.next })}`, id: "next-page" }, "older »") : null);
  return [
    h("h1", {}, "Sessions"),
    form,
    page.sessions.length
      ? table(["session", "kind", "status", "agent", "channel", "fork", "updated"], rows)
      : h("p", { class: "muted", id: "no-sessions" }, "no sessions match"),
    pager,
  ];
}
