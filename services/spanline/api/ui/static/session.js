// The API key lives in this tab's sessionStorage and travels only in the X-API-KEY header.
const KEY = "spanline.api_key";

export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (key) => sessionStorage.setItem(KEY, key),
  signOut: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

export function authHeaders(extra = {}) {
  return { "X-API-KEY": session.key() ?? "", ...extra };
}

// JSON in, JSON out; a 401 ends the session (the key was revoked or mistyped).
export async function api(path, { method = "GET", body, signal, key } = {}) {
  const headers = key ? { "X-API-KEY": key } : authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "omit",
  });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail ?? detail;
    } catch {
      // not JSON: keep the status text
    }
    if (response.status === 401 && !key) onUnauthorized();
    throw new ApiError(response.status, detail);
  }
  return response.json();
}
