// The turn view: its inbound message and reply (with tool steps), and its hook calls as a
// waterfall: one bar per call, in call order, on the turn's time axis (laid out by the
// server, as the HTML export draws it), denials and errors coloured, tool steps nested.

import { download, get } from "./api.js";
import { h, messages, ms, short, tag, when } from "./dom.js";
import { audit } from "./session.js";

export async function render(params) {
  const data = await get(`turns/${encodeURIComponent(params.id)}`);
  const t = data.turn;
  return [
    h("h1", {}, `Turn ${t.number} `, tag(t.status)),
    h("p", {}, "of session ", h("a", { href: `#/session/${t.session_id}`, id: "turn-session" }, short(t.session_id)),
      " ", h("button", { id: "export-turn", onclick: () => download(`turns/${t.turn_id}/export.html`, `turn-${t.turn_id}.html`) }, "Export as HTML")),
    h("dl", { class: "facts" },
      [["turn", t.turn_id], ["by", t.initiator + (t.initiator_id ? `:${t.initiator_id}` : "")], ["queued", when(t.queued_at)],
       ["took", t.finished_at && t.started_at ? ms(t.finished_at - t.started_at) : ""], ["error", t.error],
       ["re-run of", t.rerun_of]].filter(([, v]) => v).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("h2", {}, "Hook calls"), waterfall(data.waterfall),
    h("h2", {}, "Messages"),
    data.queued_message ? h("p", { class: "muted" }, "queued: ", data.queued_message.blocks.map((b) => b.text).join(" ")) : null,
    messages(data.messages),
    t.instructions !== null ? [h("h2", {}, "Instructions"), h("pre", {}, t.instructions)] : null,
    h("h2", {}, "Audit"), audit(data.audit),
  ];
}

function waterfall(layout) {
  if (!layout.rows.length) return h("p", { class: "muted" }, "no hook calls recorded");
  return h("div", { class: "waterfall", id: "waterfall" },
    layout.rows.map((row) => row.heading
      ? h("div", { class: "wf-row wf-heading" }, row.heading)
      : h("div", { class: `wf-row wf-${row.state} wf-depth-${row.depth}`, title: row.error ?? "", "data-point": row.point },
          h("span", { class: "wf-label" }, h("b", {}, row.point), ` ${row.kind} · ${row.plugin}`),
          h("span", { class: "wf-track" }, h("span", { class: "wf-bar", style: { marginLeft: `${row.offset}%`, width: `${row.width}%` } })),
          h("span", { class: "wf-time" }, `${ms(row.duration)} ${row.outcome}`))),
    h("p", { class: "muted" }, `axis: ${ms(layout.span)}`));
}
