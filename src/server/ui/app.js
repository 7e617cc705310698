// The page's entry: tabs, the API key dialog, the health pill, and the chat (streamed
// answers, stop, regenerate, system prompt, sampling, conversations in localStorage).
import { ApiError, apiKey, getJson, setApiKey, streamChat } from './api.js';
import { startCluster } from './cluster.js';
import { renderMarkdown } from './markdown.js';

const $ = (id) => document.getElementById(id);
const STORE = 'meshlm.conversations';
const SETTINGS = 'meshlm.settings';
const DEFAULT_SETTINGS = { temperature: 0.7, top_p: 1, top_k: 0, max_tokens: 512, seed: '' };

// ---- banner and key ------------------------------------------------------------------

function showBanner(text, kind = 'error') {
  const b = $('banner');
  b.textContent = text;
  b.dataset.kind = kind;
  b.hidden = !text;
}

let keyWaiters = [];
function askForKey(reason) {
  const d = $('key-dialog');
  $('key-reason').textContent = reason || 'This server needs an API key.';
  $('key-input').value = apiKey();
  if (!d.open) d.showModal();
  return new Promise((resolve) => keyWaiters.push(resolve));
}

$('key-dialog').addEventListener('close', () => {
  const d = $('key-dialog');
  if (d.returnValue === 'save') {
    setApiKey($('key-input').value.trim(), $('key-remember').checked);
    showBanner('');
  }
  for (const w of keyWaiters) w(d.returnValue === 'save');
  keyWaiters = [];
});
$('key-button').addEventListener('click', () => askForKey('The API key this page sends.'));

// ---- tabs and health -----------------------------------------------------------------

const cluster = startCluster({
  onUnauthorized: (msg) => askForKey(msg),
  // The cluster view polls more often than the pill does: it tells the pill what it saw.
  onState: (state, msg) => {
    if (state === 'unknown') return;
    setPill(state, state === 'ok' ? null : state, msg);
  },
});

for (const tab of document.querySelectorAll('.tab')) {
  tab.addEventListener('click', () => showView(tab.dataset.view));
}
function showView(name) {
  for (const tab of document.querySelectorAll('.tab')) {
    tab.classList.toggle('active', tab.dataset.view === name);
  }
  $('view-chat').hidden = name !== 'chat';
  $('view-cluster').hidden = name !== 'cluster';
  cluster.setVisible(name === 'cluster');
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
}

let ranks = 0;
function setPill(state, text, title) {
  const pill = $('health');
  pill.dataset.state = state;
  pill.textContent = text || (state === 'ok' ? `ok · ${ranks} rank${ranks === 1 ? '' : 's'}` : state);
  pill.title = title || 'GET /health';
}

async function pollHealth() {
  try {
    const h = await getJson('/health', 3000);
    ranks = h.ranks;
    setPill(h.status, null, h.error);
    $('model-name').textContent = h.model || '';
  } catch (e) {
    setPill('unreachable', null, e.message);
  }
}
setInterval(pollHealth, 3000);
pollHealth();

// ---- conversations -------------------------------------------------------------------

function load(name, fallback) {
  try {
    return JSON.parse(localStorage.getItem(name)) ?? fallback;
  } catch {
    return fallback;
  }
}

let convs = load(STORE, []);
let current = convs[0]?.id;
let settings = { ...DEFAULT_SETTINGS, ...load(SETTINGS, {}) };
let running = null;  // { controller } while an answer streams

function save() {
  try {
    localStorage.setItem(STORE, JSON.stringify(convs));
    localStorage.setItem(SETTINGS, JSON.stringify(settings));
  } catch (e) {
    showBanner(`The conversations could not be saved in this browser: ${e.message}`);
  }
}

function conv() {
  let c = convs.find((x) => x.id === current);
  if (!c) {
    c = { id: crypto.randomUUID?.() || String(Date.now()), title: 'New chat', system: '',
          messages: [] };
    convs.unshift(c);
    current = c.id;
  }
  return c;
}

function renderList() {
  const ul = $('conversations');
  ul.replaceChildren();
  for (const c of convs) {
    const li = document.createElement('li');
    li.classList.toggle('active', c.id === current);
    const span = document.createElement('span');
    span.textContent = c.title;
    li.appendChild(span);
    const del = document.createElement('button');
    del.textContent = '×';
    del.title = 'Delete this conversation';
    del.addEventListener('click', (ev) => {
      ev.stopPropagation();
      if (running && c.id === current) return;
      convs = convs.filter((x) => x !== c);
      if (current === c.id) current = convs[0]?.id;
      save();
      renderAll();
    });
    li.appendChild(del);
    li.addEventListener('click', () => {
      if (running) return;
      current = c.id;
      renderAll();
    });
    ul.appendChild(li);
  }
}

function statsText(s) {
  const parts = [`${s.tokens} token${s.tokens === 1 ? '' : 's'}`];
  if (s.tps !== undefined) parts.push(`${s.tps.toFixed(1)} tok/s`);
  if (s.ttft_ms !== undefined) parts.push(`TTFT ${Math.round(s.ttft_ms)} ms`);
  if (s.finish) parts.push(s.finish === 'length' ? 'cut at max_tokens' : s.finish);
  return parts.join(' · ');
}

function messageNode(m) {
  const div = document.createElement('div');
  div.className = `msg ${m.role}`;
  const role = document.createElement('div');
  role.className = 'role';
  role.textContent = m.role === 'user' ? 'You' : 'Assistant';
  div.appendChild(role);
  const body = document.createElement('div');
  body.className = 'body';
  fillBody(body, m);
  div.appendChild(body);
  const stats = document.createElement('div');
  stats.className = 'stats';
  fillStats(stats, m);
  div.appendChild(stats);
  return div;
}

function fillBody(body, m) {
  if (m.role === 'user') {
    body.replaceChildren(...m.content.split('\n').flatMap((l, i) =>
      i ? [document.createElement('br'), document.createTextNode(l)] : [document.createTextNode(l)]));
  } else {
    body.replaceChildren(...renderMarkdown(m.content).childNodes);
  }
  if (m.error) {
    const e = document.createElement('p');
    e.className = 'error';
    e.textContent = m.error;
    body.appendChild(e);
  }
}

function fillStats(stats, m) {
  const parts = [];
  if (m.pending) parts.push('generating…');
  if (m.stopped) parts.push('stopped');
  if (m.stats) parts.push(statsText(m.stats));
  stats.textContent = parts.join(' · ');
}

function renderMessages() {
  const box = $('messages');
  box.replaceChildren(...conv().messages.map(messageNode));
  box.scrollTop = box.scrollHeight;
}

function renderControls() {
  const c = conv();
  const last = c.messages[c.messages.length - 1];
  $('send').disabled = !!running;
  $('stop').disabled = !running;
  $('regenerate').disabled = !!running || !last;
  $('system-prompt').value = c.system || '';
  $('temperature').value = settings.temperature;
  $('top-p').value = settings.top_p;
  $('top-k').value = settings.top_k;
  $('max-tokens').value = settings.max_tokens;
  $('seed').value = settings.seed;
}

function renderAll() {
  conv();
  renderList();
  renderMessages();
  renderControls();
}

// ---- settings ------------------------------------------------------------------------

$('system-prompt').addEventListener('change', (e) => {
  conv().system = e.target.value;
  save();
});
for (const [id, key] of [['temperature', 'temperature'], ['top-p', 'top_p'], ['top-k', 'top_k'],
                         ['max-tokens', 'max_tokens'], ['seed', 'seed']]) {
  $(id).addEventListener('change', (e) => {
    settings[key] = e.target.value === '' ? '' : Number(e.target.value);
    save();
  });
}

function requestBody(c) {
  const messages = [];
  if (c.system?.trim()) messages.push({ role: 'system', content: c.system });
  for (const m of c.messages) {
    if (m.pending) continue;
    if (m.role === 'assistant' && !m.content) continue;
    messages.push({ role: m.role, content: m.content });
  }
  const body = { messages };
  const num = (v) => v !== '' && v !== null && Number.isFinite(Number(v));
  if (num(settings.temperature)) body.temperature = Number(settings.temperature);
  if (num(settings.top_p)) body.top_p = Number(settings.top_p);
  if (num(settings.top_k) && Number(settings.top_k) > 0) body.top_k = Number(settings.top_k);
  if (num(settings.max_tokens) && Number(settings.max_tokens) > 0) {
    body.max_tokens = Number(settings.max_tokens);
  }
  if (num(settings.seed)) body.seed = Number(settings.seed);
  return body;
}

// ---- generation ----------------------------------------------------------------------

async function generate() {
  const c = conv();
  const body = requestBody(c);
  const msg = { role: 'assistant', content: '', pending: true };
  c.messages.push(msg);
  running = { controller: new AbortController() };
  renderMessages();
  renderControls();
  const node = $('messages').lastElementChild;
  const bodyEl = node.querySelector('.body');
  const statsEl = node.querySelector('.stats');
  const t0 = performance.now();
  let first = null;
  let chunks = 0;
  let scheduled = false;
  const paint = () => {
    scheduled = false;
    fillBody(bodyEl, msg);
    const box = $('messages');
    box.scrollTop = box.scrollHeight;
  };
  const finishStats = (usage, finish) => {
    const end = performance.now();
    const tokens = usage?.completion_tokens ?? chunks;
    const s = { tokens };
    if (first !== null) {
      s.ttft_ms = first - t0;
      // The decode rate: tokens after the first over the time after it.
      if (tokens > 1 && end > first) s.tps = (tokens - 1) / ((end - first) / 1000);
    }
    if (finish) s.finish = finish;
    msg.stats = s;
  };
  try {
    const r = await streamChat(body, running.controller.signal, (delta) => {
      if (first === null) first = performance.now();
      chunks++;
      msg.content += delta;
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(paint);
      }
    });
    finishStats(r.usage, r.finish_reason);
  } catch (e) {
    if (first !== null) finishStats(null, null);  // a failure before any text has none
    if (e.name === 'AbortError') {
      msg.stopped = true;
    } else {
      msg.error = e.message;
      if (e instanceof ApiError && e.status === 401) askForKey(e.message);
    }
  } finally {
    delete msg.pending;
    running = null;
    if (c.messages.length && c.title === 'New chat') {
      c.title = c.messages[0].content.slice(0, 40) || 'New chat';
    }
    save();
    fillBody(bodyEl, msg);
    fillStats(statsEl, msg);
    renderList();
    renderControls();
  }
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  if (running) return;
  const text = $('prompt').value.trim();
  if (!text) return;
  const c = conv();
  c.messages.push({ role: 'user', content: text });
  if (c.title === 'New chat') c.title = text.slice(0, 40);
  $('prompt').value = '';
  save();
  renderList();
  generate();
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => running?.controller.abort());
$('regenerate').addEventListener('click', () => {
  if (running) return;
  const c = conv();
  if (c.messages[c.messages.length - 1]?.role === 'assistant') c.messages.pop();
  if (!c.messages.length) return renderAll();
  save();
  generate();
});
$('new-chat').addEventListener('click', () => {
  if (running) return;
  const empty = convs.find((x) => !x.messages.length);
  current = empty ? empty.id : undefined;
  conv();
  save();
  renderAll();
  $('prompt').focus();
});

// ---- start ---------------------------------------------------------------------------

renderAll();
showView(location.hash === '#cluster' ? 'cluster' : 'chat');
getJson('/v1/models').then(
  (m) => { if (m.data?.[0]?.id) $('model-name').textContent = m.data[0].id; },
  (e) => {
    if (e.status === 401) askForKey(e.message);
    else showBanner(e.message);
  });
