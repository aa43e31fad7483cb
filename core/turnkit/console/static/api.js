// Talking to the console's API: the bearer token, JSON reads, the live stream, downloads.
//
// The token (when the agent has one) is asked once and kept in sessionStorage: this tab
// only, gone when it closes. It travels as the Authorization header on every request,
// the live stream included: that stream is read with fetch() instead of EventSource,
// which cannot send headers and would need the token in the URL (where logs, the
// history and Referer headers keep it).

const KEY = "turnkit-console-token";
const base = new URL("api/", document.baseURI);

export class Unauthorized extends Error {}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(value) {
  sessionStorage.setItem(KEY, value);
}

function headers(extra = {}) {
  const found = token();
  return found ? { ...extra, Authorization: `Bearer ${found}` } : extra;
}

async function answer(response) {
  if (response.status === 401) throw new Unauthorized(await message(response));
  if (!response.ok) throw new Error(await message(response));
  return response;
}

async function message(response) {
  try {
    const body = await response.json();
    return body.error?.message ?? response.statusText;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

export async function get(path, params = {}) {
  const url = new URL(path, base);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return (await answer(await fetch(url, { headers: headers() }))).json();
}

export async function post(path, body) {
  const response = await fetch(new URL(path, base), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  return (await answer(response)).json();
}

// Save an export page: fetched with the token, handed to the browser as a file.
export async function download(path, name) {
  const response = await answer(await fetch(new URL(path, base), { headers: headers() }));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// Server-sent events of /api/live, read from a streamed fetch; reconnects after a pause.
export async function follow(since, onTurn, onState) {
  for (;;) {
    try {
      const url = new URL("live", base);
      url.searchParams.set("since", since);
      const response = await answer(await fetch(url, { headers: headers() }));
      onState("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim());
          if (block.startsWith("event: turn") && data.length) {
            const turn = JSON.parse(data.join("\n"));
            since = Math.max(since, turn.finished_at ?? turn.queued_at);
            onTurn(turn);
          }
        }
      }
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
    }
    onState("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}
