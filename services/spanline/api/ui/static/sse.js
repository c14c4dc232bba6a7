// Server-sent events over fetch streaming: EventSource cannot send the X-API-KEY header. After a drop
// the stream reopens with Last-Event-ID, so nothing is missed or repeated; it ends when the server
// closes it after the run's terminal event (`done`), or when the caller aborts.
import { authHeaders, ApiError } from "./session.js";

export function followEvents(url, { onEvents, onOpen, onError, onEnd, isDone, signal }) {
  let lastEventId = null;
  let retryMs = 250;

  async function once() {
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    const response = await fetch(url, { headers, signal, credentials: "omit", cache: "no-store" });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail ?? detail;
      } catch {
        // keep the status text
      }
      throw new ApiError(response.status, detail);
    }
    onOpen?.();
    retryMs = 250;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const parts = buffer.split(/\r?\n\r?\n/);
      buffer = parts.pop();
      const batch = [];
      for (const part of parts) {
        const message = parseMessage(part);
        if (message === null) continue;
        if (message.id !== null) lastEventId = message.id;
        batch.push(message);
      }
      if (batch.length) onEvents(batch);
    }
  }

  (async () => {
    while (!signal.aborted) {
      try {
        await once();
        if (isDone()) break; // the server closed after the terminal event
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError) {
          onError?.(error);
          return;
        }
        // a network drop: resume below
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
      retryMs = Math.min(retryMs * 2, 5000);
    }
    if (!signal.aborted) onEnd?.();
  })();
}

function parseMessage(text) {
  let id = null;
  let event = "message";
  const data = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  return { id, event, data: JSON.parse(data.join("\n")) };
}
