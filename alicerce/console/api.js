// The console's only way to the server: the public REST API, with the key of this tab.
//
// The key lives in sessionStorage (this tab only, gone when it closes); it is sent as a
// bearer token and never put in a URL. The root key acts for one account at a time with the
// `X-Alicerce-Account` header.

const BASE = "/api/v1";
const KEY = "alicerce.key";
const ACCOUNT = "alicerce.account";
const ACCOUNT_NAME = "alicerce.account-name";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.type = error.type || null;
    this.code = error.code || null;
    this.param = error.param || null;
    this.body = body;
  }
}

export const session = {
  key: () => sessionStorage.getItem(KEY),
  account: () => sessionStorage.getItem(ACCOUNT),
  accountName: () => sessionStorage.getItem(ACCOUNT_NAME),
  setKey: (key) => sessionStorage.setItem(KEY, key),
  /** The account the root key acts for (null: none). */
  setAccount: (account) => {
    if (account) {
      sessionStorage.setItem(ACCOUNT, account.id);
      sessionStorage.setItem(ACCOUNT_NAME, account.name);
    } else {
      sessionStorage.removeItem(ACCOUNT);
      sessionStorage.removeItem(ACCOUNT_NAME);
    }
  },
  clear: () => sessionStorage.clear(),
};

function headers(extra = {}, key = session.key()) {
  const result = { ...extra };
  if (key) result.authorization = `Bearer ${key}`;
  const account = session.account();
  if (account) result["x-alicerce-account"] = account;
  return result;
}

/** A path with its query string; empty and null values are left out. */
export function withQuery(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") params.append(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * A call to the API: resolves to the JSON answer (null for 204) or throws `ApiError`.
 * `options`: `{body, query, signal, key}`.
 */
export async function api(method, path, options = {}) {
  const init = { method, headers: headers({}, options.key), signal: options.signal };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers["content-type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(BASE + withQuery(path, options.query), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { error: { message: "The server cannot be reached." } });
  }
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export const get = (path, query, options = {}) => api("GET", path, { ...options, query });
export const post = (path, body, options = {}) => api("POST", path, { ...options, body });
export const patch = (path, body, options = {}) => api("PATCH", path, { ...options, body });
export const del = (path, options = {}) => api("DELETE", path, options);

/**
 * A streamed chat completion. `onOpen({requestId, headers})` once the answer's headers are in
 * (before the first chunk: `x-request-id`, `x-alicerce-model`, `x-alicerce-routed-complexity`...);
 * `onChunk(chunk)` for every `data:` event as it arrives. Resolves to `{requestId, headers}`
 * at `[DONE]`. An error answer, an error event, or a stream cut before `[DONE]` throws
 * `ApiError`; `signal` stops it (an `AbortError`; the server then stops the upstream too).
 */
export async function streamChat(body, { onChunk, onOpen = () => {}, signal } = {}) {
  let response;
  try {
    response = await fetch(`${BASE}/chat/completions`, {
      method: "POST",
      headers: headers({ "content-type": "application/json", accept: "text/event-stream" }),
      body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { error: { message: "The server cannot be reached." } });
  }
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const opened = { requestId: response.headers.get("x-request-id"), headers: response.headers };
  onOpen(opened);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    let read;
    try {
      read = await reader.read();
    } catch (err) {
      if (err.name === "AbortError" || (signal && signal.aborted)) throw err;
      throw new ApiError(0, { error: { message: "The connection broke off during the answer." } });
    }
    if (read.done) break;
    buffer += read.value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") {
          reader.cancel().catch(() => {});
          return opened;
        }
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(chunk.error.status || 502, chunk);
        onChunk(chunk);
      }
    }
  }
  throw new ApiError(0, { error: { message: "The answer ended before it was complete." } });
}

/**
 * Uploads one file as multipart form data, reporting progress (fetch cannot report an
 * upload's progress; XMLHttpRequest can). Resolves to `{status, body}` (a document upload
 * answers 202 when queued, 200 when the collection held it already) or throws `ApiError`;
 * `signal` aborts it (an `AbortError`).
 */
export function upload(path, file, { onProgress = () => {}, fields = {}, signal } = {}) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", BASE + path);
    for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null;
      }
      if (request.status >= 200 && request.status < 300) resolve({ status: request.status, body });
      else reject(new ApiError(request.status, body));
    });
    request.addEventListener("error", () =>
      reject(new ApiError(0, { error: { message: "The upload was cut off." } })),
    );
    request.addEventListener("abort", () => reject(new DOMException("The upload was stopped.", "AbortError")));
    if (signal) {
      if (signal.aborted) return reject(new DOMException("The upload was stopped.", "AbortError"));
      signal.addEventListener("abort", () => request.abort(), { once: true });
    }
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("file", file, file.name);
    request.send(form);
  });
}
