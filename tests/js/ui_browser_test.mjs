// The web page in a real browser (Debian's chromium, driven by playwright-core) against
// `meshlm serve -n 2` with an API key over loopback: the key prompt, a streamed answer
// with its tokens/s and time to first token, stop, regenerate, markdown, conversations
// kept over a reload, a 401 and a 429 shown as sentences, the cluster view listing both
// ranks, then a killed worker shown as a failure and the server down shown in the chat.
// Screenshots go to OUT_DIR and are checked.
//   node ui_browser_test.mjs MESHLM_BINARY MODEL_DIR JS_DIR OUT_DIR
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const SKIP = 77;
const [meshlm, model, jsDir, outDir] = process.argv.slice(2);
const KEY = 'ui-test-key';
const CHROMIUM = '/usr/bin/chromium';

if (!fs.existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} is not installed (apt-get install chromium)`);
  process.exit(SKIP);
}
let chromium;
try {
  chromium = createRequire(path.resolve(jsDir, 'package.json'))('playwright-core').chromium;
} catch (e) {
  console.error(`playwright-core is missing from ${jsDir} (tests/js/setup_ui_browser.sh): ${e}`);
  process.exit(1);
}
fs.mkdirSync(outDir, { recursive: true });

const cleanups = [];
async function cleanup() {
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch {}
  }
}
// Everything this test starts is gone within the time ctest gives it.
const watchdog = setTimeout(async () => {
  console.error('ui_browser_test: timed out after 240 s');
  await cleanup();
  process.exit(1);
}, 240000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The children of `parent` whose environment says MESHLM_RANK=`rank`.
function rankPid(parent, rank) {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const env = fs.readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (env.includes(`MESHLM_RANK=${rank}`)) return Number(name);
    } catch {}
  }
  return 0;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startServer() {
  const port = await freePort();
  const proc = spawn(meshlm, ['serve', '--model', model, '-n', '2', '--port', String(port),
                              '--threads', '1', '--api-key', KEY],
                     // Each step stretched to 10 ms: a long answer then lasts seconds, so
                     // Stop lands mid-stream even on a loaded machine.
                     { stdio: ['ignore', 'inherit', 'inherit'], detached: true,
                       env: { ...process.env, MESHLM_STEP_DELAY_MS: '10' } });
  let exited = false;
  proc.on('exit', () => { exited = true; });
  const ranks = [];
  cleanups.push(async () => {
    if (!exited) {
      try { process.kill(proc.pid, 'SIGTERM'); } catch {}
      const deadline = Date.now() + 10000;
      while (!exited && Date.now() < deadline) await sleep(50);
      if (!exited) try { process.kill(-proc.pid, 'SIGKILL'); } catch {}
    }
    for (const pid of ranks) if (alive(pid)) try { process.kill(pid, 'SIGKILL'); } catch {}
  });
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline && !exited) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) {
        for (const rank of [0, 1]) ranks.push(rankPid(proc.pid, rank));
        return { port, proc, ranks, exited: () => exited };
      }
    } catch {}
    await sleep(100);
  }
  throw new Error('meshlm serve -n 2 did not become ready in 60 s');
}

async function shot(page, name, expectText) {
  const file = path.join(outDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 15000 });
  const png = fs.readFileSync(file);
  assert.ok(png.length > 2000, `${file}: ${png.length} bytes`);
  assert.equal(png.subarray(1, 4).toString(), 'PNG', `${file} is not a PNG`);
  const text = await page.evaluate(() => document.body.innerText);
  for (const t of expectText) assert.ok(text.includes(t), `${name}: '${t}' not in the page`);
  console.log(`screenshot ${file} (${png.length} bytes)`);
}

const lastAnswer = (page) => page.locator('.msg.assistant').last();

async function run() {
  const server = await startServer();
  const base = `http://127.0.0.1:${server.port}`;
  assert.ok(server.ranks.every((p) => p > 0), `rank pids: ${server.ranks}`);

  // The page itself is public, built into the binary, and says what it may load.
  const index = await fetch(`${base}/`, { signal: AbortSignal.timeout(5000) });
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.match(index.headers.get('content-security-policy'), /default-src 'self'/);
  const etag = index.headers.get('etag');
  const again = await fetch(`${base}/`, { headers: { 'If-None-Match': etag },
                                          signal: AbortSignal.timeout(5000) });
  assert.equal(again.status, 304);
  const js = await fetch(`${base}/ui/app.js`, { signal: AbortSignal.timeout(5000) });
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.equal((await fetch(`${base}/v1/cluster`, { signal: AbortSignal.timeout(5000) })).status,
               401);
  const cluster = await (await fetch(`${base}/v1/cluster`, {
    headers: { Authorization: `Bearer ${KEY}` }, signal: AbortSignal.timeout(5000) })).json();
  assert.equal(cluster.ranks.length, 2);
  assert.equal(cluster.status, 'ok');

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
                                          args: ['--no-sandbox', '--disable-gpu'],
                                          timeout: 30000 });
  cleanups.push(() => Promise.race([browser.close(), sleep(5000)]));
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Loopback only: a request for anywhere else fails the test.
  const outside = [];
  await context.route((url) => !/^http:\/\/127\.0\.0\.1:/.test(url.href),
                      (route) => { outside.push(route.request().url()); route.abort(); });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  await page.goto(`${base}/`, { timeout: 15000 });

  // The server has a key: the page asks for it, in words.
  await page.waitForSelector('#key-dialog[open]');
  assert.match(await page.textContent('#key-reason'), /needs an API key/);
  await page.fill('#key-input', KEY);
  await page.click('#key-save');
  await page.waitForFunction(() => !document.querySelector('#key-dialog').open);

  // A short answer: streamed text, then its token count, tokens/s and time to first token.
  // The system prompt and sampling settings go with the request.
  const bodies = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/v1/chat/completions')) bodies.push(JSON.parse(r.postData()));
  });
  await page.click('#settings summary');
  await page.fill('#system-prompt', 'You answer briefly.');
  await page.dispatchEvent('#system-prompt', 'change');
  await page.fill('#max-tokens', '24');
  await page.dispatchEvent('#max-tokens', 'change');
  await page.fill('#prompt', 'Tell me about the sea.');
  await page.click('#send');
  await page.waitForFunction(() => {
    const m = [...document.querySelectorAll('.msg.assistant')].pop();
    return m && /tok\/s/.test(m.querySelector('.stats').textContent);
  });
  const stats = await lastAnswer(page).locator('.stats').textContent();
  assert.match(stats, /\d+ tokens? · [\d.]+ tok\/s · TTFT \d+ ms/);
  const first = await lastAnswer(page).locator('.body').textContent();
  assert.ok(first.trim().length > 0, 'the answer is empty');
  assert.deepEqual(bodies[0].messages[0], { role: 'system', content: 'You answer briefly.' });
  assert.equal(bodies[0].max_tokens, 24);
  assert.equal(bodies[0].stream, true);
  await shot(page, 'ui_chat', ['Tell me about the sea.', 'tok/s', 'TTFT']);

  // A long answer, watched while it streams, then stopped.
  await page.fill('#max-tokens', '100000');
  await page.dispatchEvent('#max-tokens', 'change');
  await page.fill('#temperature', '1');
  await page.dispatchEvent('#temperature', 'change');
  await page.fill('#prompt', 'Write a very long story.');
  await page.click('#send');
  // The page is watched, and Stop clicked, from inside it: as soon as the text has grown
  // twice.
  const watched = await page.evaluate(() => new Promise((resolve) => {
    const lengths = new Set();
    const tick = () => {
      const m = [...document.querySelectorAll('.msg.assistant')].pop();
      const stats = m.querySelector('.stats').textContent;
      if (!/generating/.test(stats)) return resolve({ lengths: [...lengths], clicked: false, stats });
      const n = m.querySelector('.body').textContent.length;
      if (n) lengths.add(n);
      if (lengths.size >= 2) {
        document.getElementById('stop').click();
        return resolve({ lengths: [...lengths], clicked: true });
      }
      setTimeout(tick, 2);
    };
    tick();
  }));
  assert.ok(watched.clicked, `the answer ended before Stop could be clicked: ${JSON.stringify(watched)}`);
  await page.waitForFunction(() => {
    const m = [...document.querySelectorAll('.msg.assistant')].pop();
    return /^stopped/.test(m.querySelector('.stats').textContent);
  });
  // The server drops the sequence once it sees the client gone.
  let metrics = '';
  for (const until = Date.now() + 5000; Date.now() < until; await sleep(50)) {
    metrics = await (await fetch(`${base}/metrics`, {
      headers: { Authorization: `Bearer ${KEY}` }, signal: AbortSignal.timeout(5000) })).text();
    if (/meshlm_requests_cancelled_total [1-9]/.test(metrics)) break;
  }
  assert.match(metrics, /meshlm_requests_cancelled_total [1-9]/);
  assert.equal(await page.isEnabled('#send'), true);
  await page.waitForFunction(() => document.querySelector('#stat-running') !== null);

  // Regenerate replaces the stopped answer with a new one.
  await page.fill('#max-tokens', '16');
  await page.dispatchEvent('#max-tokens', 'change');
  const before = await page.locator('.msg').count();
  await page.click('#regenerate');
  await page.waitForFunction(() => {
    const m = [...document.querySelectorAll('.msg.assistant')].pop();
    return /tok\/s|tokens?/.test(m.querySelector('.stats').textContent) &&
           !/generating|^stopped/.test(m.querySelector('.stats').textContent);
  });
  assert.equal(await page.locator('.msg').count(), before);

  // The markdown renderer: blocks, code, and model text never taken as HTML.
  const html = await page.evaluate(async () => {
    const { renderMarkdown } = await import('/ui/markdown.js');
    return renderMarkdown('# Title\n\nSome **bold** and `code`.\n\n```js\nif (a < b) {}\n```\n' +
                          '- one\n- two\n\n<img src=x onerror=alert(1)> [x](javascript:alert(1))')
      .innerHTML;
  });
  assert.match(html, /<h1>Title<\/h1>/);
  assert.match(html, /<strong>bold<\/strong>/);
  assert.match(html, /<code class="lang-js" data-lang="js">if \(a &lt; b\) \{\}<\/code>/);
  assert.match(html, /<ul><li>one<\/li><li>two<\/li><\/ul>/);
  assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
  assert.doesNotMatch(html, /<a /);
  const more = await page.evaluate(async () => {
    const { renderMarkdown } = await import('/ui/markdown.js');
    const r = (t) => renderMarkdown(t).innerHTML;
    return { table: r('| a | b |\n|---|---|\n| 1 | *2* |'), ordered: r('3. x\n4. y'),
             open: r('text\n```py\nprint(1)'), link: r('[site](https://example.org/a)'),
             quote: r('> said\n> more') };
  });
  assert.match(more.table, /<table><thead><tr><th>a<\/th><th>b<\/th><\/tr><\/thead><tbody><tr><td>1<\/td><td><em>2<\/em><\/td><\/tr>/);
  assert.match(more.ordered, /<ol start="3"><li>x<\/li><li>y<\/li><\/ol>/);
  assert.match(more.open, /<p>text<\/p><pre><code class="lang-py" data-lang="py">print\(1\)<\/code>/);
  assert.match(more.link, /<a href="https:\/\/example.org\/a" rel="noopener noreferrer" target="_blank">site<\/a>/);
  assert.match(more.quote, /<blockquote><p>said more<\/p><\/blockquote>/);

  // Conversations stay over a reload (the key was kept for the session).
  await page.reload();
  await page.waitForSelector('.msg.user');
  assert.match(await page.textContent('#conversations'), /Tell me about the sea/);
  assert.equal(await page.locator('.msg.assistant').count(), 2);

  // A 429 from the server reads as a sentence (the answer is made up in the browser:
  // reaching the queue limit of a real server would take many slow requests).
  await page.route('**/v1/chat/completions', (route) => route.fulfill({
    status: 429, headers: { 'Retry-After': '1', 'Content-Type': 'application/json' },
    body: JSON.stringify({ error: { message: 'the server is at capacity: retry later',
                                    type: 'rate_limit_error', code: 'rate_limit_exceeded' } }),
  }));
  await page.fill('#prompt', 'Are you busy?');
  await page.click('#send');
  await page.waitForSelector('.msg.assistant .error');
  assert.match(await lastAnswer(page).locator('.error').textContent(),
               /at capacity \(429\): retry in 1 s/);
  await page.unroute('**/v1/chat/completions');

  // A wrong key: the real server's 401 reads as a sentence, and the page asks again.
  await page.click('#key-button');
  await page.fill('#key-input', 'wrong-key');
  await page.click('#key-save');
  await page.fill('#prompt', 'Hello?');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant .error').length >= 2);
  assert.match(await lastAnswer(page).locator('.error').textContent(), /refused the API key/);
  await page.waitForSelector('#key-dialog[open]');
  await page.fill('#key-input', KEY);
  await page.click('#key-save');

  // The cluster view: both ranks, their shards, the live counters, the topology.
  await page.click('#tab-cluster');
  await page.waitForFunction(() =>
    document.querySelectorAll('#ranks tbody tr').length === 2 &&
    document.querySelector('#cluster-status').dataset.state === 'ok');
  const status = await page.textContent('#cluster-status');
  assert.match(status, /2 ranks on 1 host/);
  // The start gate probed the one link: its latency and GB/s are shown, not "not measured".
  const link = await page.textContent('#links tbody tr');
  assert.match(link, /rank 0 ↔ rank 1.*µs.*[0-9]\.[0-9]{2}$/s, link);
  // The prefix cache holds the finished answers' tokens.
  await page.waitForFunction(() => /^[1-9][0-9]* tok/.test(
    document.querySelector('#stat-cache')?.textContent ?? ''), null, { timeout: 10000 });
  assert.equal(await page.locator('#topology circle.rank').count(), 2);
  assert.ok(Number(await page.textContent('#stat-tokens')) > 0);
  await shot(page, 'ui_cluster', ['rank', 'stage', 'Topology', 'local']);

  // A worker stalls: within a few seconds the view says the cluster is degraded.
  process.kill(server.ranks[1], 'SIGSTOP');
  await page.waitForFunction(() =>
    document.querySelector('#cluster-status').dataset.state === 'degraded', null,
    { timeout: 15000 });
  assert.match(await page.textContent('#cluster-status'), /^degraded: \S/);
  await page.waitForSelector('#health[data-state=degraded]');
  // The stalled rank is named, and its row alone says so.
  await page.waitForFunction(() => {
    const cells = [...document.querySelectorAll('#ranks tbody tr')].map(
      (tr) => tr.querySelector('.state')?.textContent);
    return cells[0] === 'ok' && cells[1] === 'stalled';
  }, null, { timeout: 10000 });
  assert.match(await page.textContent('#cluster-status'), /rank 1 has not answered/);
  await shot(page, 'ui_cluster_degraded', ['degraded', 'stalled']);

  // It dies: the view shows the failure.
  process.kill(server.ranks[1], 'SIGKILL');
  await page.waitForFunction(() =>
    ['error', 'unreachable'].includes(document.querySelector('#cluster-status').dataset.state),
    null, { timeout: 20000 });
  await page.waitForFunction(() =>
    document.querySelector('#topology circle.rank')?.dataset.state !== 'ok');
  const failure = await page.textContent('#cluster-status');
  assert.match(failure, /error|unreachable/);
  await shot(page, 'ui_cluster_failed', [failure.slice(0, 20)]);

  // The server is down by now (a failed cluster stops it): the chat says so.
  const downBy = Date.now() + 15000;
  while (!server.exited() && Date.now() < downBy) await sleep(100);
  assert.ok(server.exited(), 'the server should stop once its worker is gone');
  await page.click('#tab-chat');
  await page.fill('#prompt', 'Anyone there?');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelectorAll('.msg.assistant .error').length >= 3);
  assert.match(await lastAnswer(page).locator('.error').textContent(), /Cannot reach the server/);
  await page.waitForSelector('#health[data-state=unreachable]', { timeout: 10000 });
  await shot(page, 'ui_server_down', ['Cannot reach the server']);

  assert.deepEqual(outside, [], 'the page asked for something off this server');
  assert.deepEqual(consoleErrors, [], 'errors thrown in the page');
}

try {
  await run();
  console.log('ui_browser_test: ok');
  await cleanup();
  clearTimeout(watchdog);
  process.exit(0);
} catch (e) {
  console.error('ui_browser_test failed:', e);
  await cleanup();
  clearTimeout(watchdog);
  process.exit(1);
}
