// JSON calls to PumpStream's endpoints, with the page's CSRF token.

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/** POST and return `{ok, status, body}`; a network failure becomes status 0 with a message. */
export async function postJson(url, data = {}) {
  const isForm = data instanceof FormData;
  try {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: isForm
        ? { "X-CSRFToken": csrfToken() }
        : { "X-CSRFToken": csrfToken(), "Content-Type": "application/json" },
      body: isForm ? data : JSON.stringify(data),
    });
    return { ok: response.ok, status: response.status, body: await readBody(response) };
  } catch (error) {
    return { ok: false, status: 0, body: { message: "The server could not be reached. Check the connection." } };
  }
}

/** A new idempotency key: one per intent (a confirmed dialog, an order asked), sent again with every retry of it. */
export function idempotencyKey() {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export async function getJson(url) {
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    return { ok: response.ok, status: response.status, body: await readBody(response) };
  } catch (error) {
    return { ok: false, status: 0, body: { message: "The server could not be reached." } };
  }
}

async function readBody(response) {
  try {
    return await response.json();
  } catch {
    return { message: `The server answered ${response.status}.` };
  }
}
