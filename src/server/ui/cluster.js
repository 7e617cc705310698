// The cluster view: polls GET /v1/cluster once a second while shown, and draws the
// status, live counters (tok/s from the token counter's change between polls), the
// topology, and the ranks, hosts and links tables. A server that stops answering keeps
// its last picture, marked unreachable.
import { getJson } from './api.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const POLL_MS = 1000;

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function bytes(n) {
  if (!n) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

const span = (s) => (s && s[1] > s[0] ? `${s[0]}–${s[1] - 1} (${s[1] - s[0]})` : '–');

function duration(s) {
  if (s < 120) return `${Math.floor(s)} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function row(tbody, cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.appendChild(c);
    else td.textContent = c;
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
}

function stateCell(state, label) {
  const s = document.createElement('span');
  s.className = 'state';
  s.dataset.state = state;
  s.textContent = label ?? state;
  return s;
}

// A rank's own state: while degraded, the ranks rank 0 waits for are the stalled ones and
// the others are fine; otherwise every rank shares the cluster's state.
function rankState(info, state, rank) {
  const waiting = info.waiting_on;
  if (state !== 'degraded' || !Array.isArray(waiting) || !waiting.length) return stateCell(state);
  return waiting.includes(rank) ? stateCell('degraded', 'stalled') : stateCell('ok');
}

// Hosts on a circle, each a box holding its ranks; links between ranks of two hosts drawn
// between the boxes (one line per rail), those inside a host dashed.
function drawTopology(info, state) {
  const root = $('topology');
  const W = Math.max(root.clientWidth || 800, 320);
  const H = 280;
  root.setAttribute('viewBox', `0 0 ${W} ${H}`);
  root.replaceChildren();
  const hosts = info.hosts || [];
  const n = hosts.length;
  const cx = W / 2;
  const cy = H / 2;
  const radius = n <= 1 ? 0 : Math.min(W, H * 2) / 2 - 110;
  const rankPos = {};
  const boxes = hosts.map((h, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    const x = n <= 1 ? cx : cx + radius * Math.cos(a) * (n === 2 ? 1.2 : 1);
    const y = n <= 1 ? cy : cy + radius * Math.sin(a) * 0.55;
    const w = 50 + 62 * h.ranks.length;
    h.ranks.forEach((r, k) => {
      rankPos[r] = { x: x - w / 2 + 56 + 62 * k, y: y + 4 };
    });
    return { h, x, y, w };
  });
  const edges = svg('g');
  root.appendChild(edges);
  for (const l of info.links || []) {
    const a = rankPos[l.a];
    const b = rankPos[l.b];
    if (!a || !b) continue;
    const rails = Math.max(1, (l.rails || []).length);
    for (let k = 0; k < rails; k++) {
      const off = (k - (rails - 1) / 2) * 6;
      edges.appendChild(svg('line', { x1: a.x, y1: a.y + off, x2: b.x, y2: b.y + off,
                                      class: l.kind }));
    }
    if (l.kind !== 'local') {
      const label = (l.rails || []).join(', ') || l.kind;
      edges.appendChild(svg('text', { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 8 }, label));
    }
  }
  const ranks = info.ranks || [];
  for (const box of boxes) {
    const g = svg('g');
    g.appendChild(svg('rect', { x: box.x - box.w / 2, y: box.y - 44, width: box.w, height: 92,
                                rx: 10, class: 'host' }));
    g.appendChild(svg('text', { x: box.x, y: box.y - 28 }, box.h.name));
    root.insertBefore(g, edges);
  }
  for (const r of ranks) {
    const p = rankPos[r.rank];
    if (!p) continue;
    const c = svg('circle', { cx: p.x, cy: p.y, r: 20, class: 'rank', 'data-state': state });
    c.appendChild(svg('title', {}, `rank ${r.rank}: layers ${span(r.layers)}, heads ${span(r.heads)}`));
    root.appendChild(c);
    root.appendChild(svg('text', { x: p.x, y: p.y + 4, class: 'in' }, `r${r.rank}`));
    root.appendChild(svg('text', { x: p.x, y: p.y + 36 }, `stage ${r.stage}`));
  }
}

function drawSpark(values) {
  const root = $('tps-spark');
  root.replaceChildren();
  if (values.length < 2) return;
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i / (values.length - 1)) * 120},${30 - (v / max) * 28}`);
  root.appendChild(svg('polyline', { points: pts.join(' ') }));
}

/// `onUnauthorized(message)` on a 401; `onState(state, message)` after every poll.
export function startCluster({ onUnauthorized, onState }) {
  let visible = false;
  let timer = null;
  let last = null;      // the last answer
  let prev = null;      // { tokens, uptime } of the previous poll
  let prevTimes = {};   // rank -> { compute, comm, uptime }
  let busy = {};        // rank -> share of wall time computing or communicating
  let tps = [];
  let downSince = null;
  let askedKey = false;
  let inflight = false;

  function render(info, state, message) {
    const status = $('cluster-status');
    status.dataset.state = state;
    status.textContent = message;
    onState?.(state, message);
    if (!info) return;
    const st = info.stats || {};
    $('stat-running').textContent = st.running ?? '–';
    $('stat-queued').textContent = st.queued ?? '–';
    // Tokens held, and the prompt tokens served from it so far.
    $('stat-cache').textContent = st.prefix_cache_tokens !== undefined
      ? `${st.prefix_cache_tokens} tok (${st.prompt_tokens_cached_total} reused)` : '–';
    $('stat-requests').textContent = st.requests_total ?? '–';
    $('stat-tokens').textContent = st.completion_tokens_total ?? '–';
    $('stat-uptime').textContent = st.uptime_s !== undefined ? duration(st.uptime_s) : '–';
    $('stat-tps').textContent = tps.length ? tps[tps.length - 1].toFixed(1) : '–';
    drawSpark(tps);
    drawTopology(info, state);
    const ranks = $('ranks').tBodies[0];
    ranks.replaceChildren();
    for (const r of info.ranks || []) {
      row(ranks, [String(r.rank), r.host, rankState(info, state, r.rank), String(r.stage),
                  `${r.tp_rank}/${r.tp_size}`, `${r.ep_rank}/${r.ep_size}`, span(r.layers),
                  span(r.heads), span(r.heads_kv), r.experts ? span(r.experts) : '–',
                  bytes(r.rss_bytes),
                  busy[r.rank] !== undefined ? `${Math.round(busy[r.rank] * 100)}%` : '–']);
    }
    const hosts = $('hosts').tBodies[0];
    hosts.replaceChildren();
    for (const h of info.hosts || []) {
      row(hosts, [h.name, h.ranks.join(', '), bytes(h.mem_available_bytes),
                  bytes(h.mem_total_bytes)]);
    }
    const links = $('links').tBodies[0];
    links.replaceChildren();
    const lat = info.gate ? `${info.gate.all_sum_latency_us.toFixed(0)} µs (all_sum)` : '–';
    for (const l of info.links || []) {
      row(links, [`rank ${l.a} ↔ rank ${l.b}`, l.kind, (l.rails || []).join(', ') || '–',
                  l.latency_us !== undefined ? `${l.latency_us.toFixed(1)} µs` : lat,
                  l.gbps !== undefined ? l.gbps.toFixed(2) : 'not measured']);
    }
    const gate = $('gate');
    const backend = info.backend ? `backend ${info.backend}. ` : '';
    gate.textContent = info.gate
      ? `${backend}Start gate: one-element all_sum ${info.gate.all_sum_latency_us.toFixed(0)} µs ` +
        `(median), checks ${info.gate.comm_ms.toFixed(1)} ms.`
      : `${backend}The start gate did not run (--no-gate).`;
  }

  function track(info) {
    const st = info.stats || {};
    if (prev && st.uptime_s > prev.uptime) {
      const rate = (st.completion_tokens_total - prev.tokens) / (st.uptime_s - prev.uptime);
      tps.push(Math.max(0, rate));
      if (tps.length > 60) tps.shift();
    }
    prev = { tokens: st.completion_tokens_total, uptime: st.uptime_s };
    for (const r of info.ranks || []) {
      if (r.compute_s === undefined) continue;
      const p = prevTimes[r.rank];
      const total = r.compute_s + r.comm_s;
      if (p && st.uptime_s > p.uptime && total >= p.total) {
        busy[r.rank] = Math.min(1, (total - p.total) / (st.uptime_s - p.uptime));
      }
      prevTimes[r.rank] = { total, uptime: st.uptime_s };
    }
  }

  async function poll() {
    timer = null;
    inflight = true;
    try {
      const info = await getJson('/v1/cluster', 3000);
      downSince = null;
      askedKey = false;
      track(info);
      last = info;
      const state = info.status;
      const msg = state === 'ok'
        ? `ok: ${info.ranks.length} rank${info.ranks.length === 1 ? '' : 's'} on ` +
          `${info.hosts.length} host${info.hosts.length === 1 ? '' : 's'} serving ${info.model.name}`
        : state === 'degraded'
          ? `degraded: ${info.error}`
          : `error: ${info.error}`;
      render(info, state, msg);
    } catch (e) {
      if (e.status === 401) {
        render(last, 'unknown', e.message);
        if (!askedKey) {
          askedKey = true;
          onUnauthorized(e.message);
        }
      } else if (e.status === 0) {
        downSince = downSince || new Date();
        const lastState = last?.status === 'error' ? `The cluster failed (${last.error}) and ` : '';
        render(last, 'unreachable',
               `${lastState}the server is unreachable since ${downSince.toLocaleTimeString()}: ` +
               `${e.message}${last ? ' The last known state is shown below.' : ''}`);
      } else {
        render(last, 'error', e.message);
      }
    }
    inflight = false;
    if (visible) timer = setTimeout(poll, POLL_MS);
  }

  return {
    setVisible(v) {
      visible = v;
      if (v && timer === null && !inflight) poll();
      if (!v && timer !== null) {
        clearTimeout(timer);
        timer = null;
      }
    },
  };
}
