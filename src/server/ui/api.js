// Calls to this server's API: the key, and every failure turned into a sentence a user can
// act on (server down, 401, 429, 503, a bad request).

const KEY_NAME = 'meshlm.apiKey';

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || '';
}

export function setApiKey(key, remember) {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
  if (!key) return;
  (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
}

/// An error with a message for the page; `status` 0 when the server was not reached.
export class ApiError extends Error {
  constructor(message, status, code, retryAfter) {
    super(message);
    this.status = status;
    this.code = code || '';
    this.retryAfter = retryAfter || 0;
  }
}

function headers(extra) {
  const h = { ...extra };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// The sentence for a failed answer, from its status and OpenAI-shaped body.
export async function errorOf(res) {
  let detail = '';
  let code = '';
  try {
    const body = await res.json();
    detail = body?.error?.message || '';
    code = body?.error?.code || '';
  } catch {
    detail = '';
  }
  const retry = Number(res.headers.get('Retry-After')) || 0;
  let msg;
  switch (res.status) {
    case 401:
      msg = apiKey() ? 'The server refused the API key: enter the right one with the Key button.'
                     : 'This server needs an API key: enter it with the Key button.';
      break;
    case 429:
      msg = `The server is at capacity (429): retry in ${retry || 'a few'} s.`;
      break;
    case 503:
      msg = `The cluster cannot answer now (503): ${detail || 'unavailable'}` +
            (retry ? ` — retry in ${retry} s.` : '');
      break;
    default:
      msg = `The server answered ${res.status}: ${detail || res.statusText || 'no detail'}`;
  }
  return new ApiError(msg, res.status, code, retry);
}

function unreachable(e) {
  if (e.name === 'AbortError') return e;
  return new ApiError(`Cannot reach the server at ${location.host}: is meshlm serve running? ` +
                      `(${e.message})`, 0, 'unreachable');
}

/// GET `path` as JSON; throws ApiError.
export async function getJson(path, timeoutMs = 5000) {
  let res;
  try {
    res = await fetch(path, { headers: headers(), signal: AbortSignal.timeout(timeoutMs),
                              cache: 'no-store' });
  } catch (e) {
    throw unreachable(e);
  }
  // /health answers 503 with a body that still describes the cluster.
  if (!res.ok && !(path === '/health' && res.status === 503)) throw await errorOf(res);
  return res.json();
}

/// POST /v1/chat/completions with stream: calls onDelta(text) per chunk and returns
/// { usage, finish_reason }. `signal` aborts (the server then drops the sequence).
export async function streamChat(body, signal, onDelta) {
  let res;
  try {
    res = await fetch('/v1/chat/completions', {
      method: 'POST', signal,
      headers: headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    });
  } catch (e) {
    throw unreachable(e);
  }
  if (!res.ok) throw await errorOf(res);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let usage = null;
  let finish = null;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(`The connection to the server broke mid-answer (${e.message}).`, 0,
                         'unreachable');
    }
    if (chunk.done) break;
    buffer += decoder.decode(chunk.value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;  // ": keep-alive" comments
        const data = line.slice(6);
        if (data === '[DONE]') return { usage, finish_reason: finish };
        let j;
        try {
          j = JSON.parse(data);
        } catch {
          continue;
        }
        if (j.error) throw new ApiError(`The cluster failed mid-answer: ${j.error.message}`, 503,
                                        j.error.code);
        if (j.usage) usage = j.usage;
        const choice = j.choices?.[0];
        if (choice?.delta?.content) onDelta(choice.delta.content);
        if (choice?.finish_reason) finish = choice.finish_reason;
      }
    }
  }
  if (!finish) throw new ApiError('The server closed the stream before the answer ended.', 0,
                                  'unreachable');
  return { usage, finish_reason: finish };
}
