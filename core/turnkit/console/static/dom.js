// Building the page: one element helper (no framework: every view is a function of the
// API's JSON that returns elements), and the formats shared by the views.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "style" && typeof value === "object") Object.assign(element.style, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function when(stamp) {
  if (!stamp) return "";
  return new Date(stamp * 1000).toISOString().replace("T", " ").slice(0, 19);
}

export function ms(seconds) {
  return `${(seconds * 1000).toFixed(2)} ms`;
}

export function short(id) {
  return id.length > 12 ? id.slice(0, 12) + "…" : id;
}

export function tag(text, kind = text) {
  return h("span", { class: `tag tag-${kind}` }, text);
}

export function sessionLink(session) {
  return h("a", { href: `#/session/${encodeURIComponent(session.session_id)}`, class: "session-link",
                  "data-session": session.session_id }, short(session.session_id));
}

export function blockText(block) {
  switch (block.type) {
    case "text": return block.text;
    case "tool_call": return `tool call ${block.name} ${JSON.stringify(block.args)}`;
    case "tool_output": return `tool output${block.is_error ? " (error)" : ""}: ${block.output}`;
    default: return `[${block.type}]`;
  }
}

export function messages(list) {
  if (!list.length) return h("p", { class: "muted" }, "no messages");
  return h("div", { class: "messages" }, list.map((stored) => {
    const marks = [];
    if (stored.compressed) marks.push("compressed");
    if (stored.summary) marks.push("summary");
    if (stored.merged_from) marks.push("merge result");
    const classes = ["msg", `msg-${stored.message.role}`, ...marks.map((m) => `msg-${m.replace(" ", "-")}`)];
    return h("div", { class: classes.join(" "), "data-message": stored.id },
      h("div", { class: "msg-head" }, `#${stored.id} ${stored.message.role} `, marks.map((m) => tag(m, m.replace(" ", "-"))),
        stored.merged_from ? h("a", { href: `#/session/${stored.merged_from}` }, ` from ${short(stored.merged_from)}`) : null,
        h("span", { class: "muted" }, when(stored.created_at))),
      h("div", { class: "msg-body" }, stored.message.blocks.map((b) => h("p", { class: b.type === "text" ? "" : "tool" }, blockText(b)))));
  }));
}

export function table(columns, rows) {
  return h("table", {}, h("tr", {}, columns.map((c) => h("th", {}, c))), rows);
}
