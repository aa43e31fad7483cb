// The audit view (every extension action, newest first, by plugin) and the plugins view
// (what `turnkit plugins` and `turnkit hooks` print: each point's implementations in call order).

import { get } from "./api.js";
import { h, table, tag } from "./dom.js";
import { audit as auditTable } from "./session.js";

export async function audit(params) {
  const page = await get("audit", params);
  const { before, ...first } = params;
  return [
    h("h1", {}, "Audit"),
    h("form", { class: "search", onsubmit: (event) => {
      event.preventDefault();
      const plugin = new FormData(event.target).get("plugin");
      location.hash = plugin ? `#/audit?plugin=${encodeURIComponent(plugin)}` : "#/audit";
    } }, h("input", { name: "plugin", value: params.plugin ?? "", placeholder: "plugin" }), h("button", {}, "Filter")),
    auditTable(page.events),
    h("p", { class: "pager" },
      before ? h("a", { href: `#/audit?${new URLSearchParams(first)}` }, "« newest") : null,
      page.next ? h("a", { href: `#/audit?${new URLSearchParams({ ...first, before: page.next })}` }, "older »") : null),
  ];
}

export async function plugins() {
  const data = await get("plugins");
  return [
    h("h1", {}, "Plugins"),
    table(["name", "kind", "status", "distribution", "hooks", "error"], data.plugins.map((p) => h("tr", { class: "plugin-row" },
      h("td", {}, h("b", {}, p.name)), h("td", {}, p.group), h("td", {}, tag(p.status)),
      h("td", {}, p.distribution ? `${p.distribution} ${p.version}` : "(in code)"),
      h("td", {}, (p.hooks ?? []).join(", ")), h("td", { class: "error" }, p.error ?? "")))),
    h("h1", {}, "Extension points"),
    data.problems.map((p) => h("p", { class: "error" }, p)),
    data.points.map((point) => h("section", { class: "point", "data-point": point.point },
      h("h3", {}, point.point, " ", tag(point.kind), h("span", { class: "muted" }, ` declared by ${point.declared_by}`)),
      h("p", { class: "muted" }, point.summary),
      point.implementations.length
        ? h("ol", {}, point.implementations.map((i) => h("li", {}, h("b", {}, i.plugin), ` ${i.function} `,
            i.flags.map((f) => tag(f)), h("span", { class: "muted" }, i.distribution ?? ""))))
        : h("p", { class: "muted" }, "no implementations"))),
  ];
}
