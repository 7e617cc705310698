// The official OpenAI SDK against `meshlm serve`: models.list, chat and completions with
// and without streaming (the SDK's own stream helper), and error classes, on 1 rank and
// on 2 ranks (tp=2) over loopback; then the SDK's helpers for structured output (zod
// schema, chat.completions.parse) and tools (runTools calling a local function) on a server
// with a tool-aware chat template.
//   node openai_sdk_test.mjs MESHLM_BINARY MODEL_DIR SDK_DIR
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const [meshlm, model, sdkDir] = process.argv.slice(2);
const require = createRequire(path.join(sdkDir, 'package.json'));
const OpenAI = require('openai').default ?? require('openai');
const KEY = 'sdk-test-key';

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startServer(extra) {
  const port = await freePort();
  const proc = spawn(meshlm, ['serve', '--model', model, '--port', String(port), '--threads', '1',
                              '--api-key', KEY, ...extra],
                     { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  let exited = false;
  proc.on('exit', () => { exited = true; });
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline && !exited) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.status === 200) return { port, proc, exited: () => exited };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  stopServer({ proc, exited: () => exited });
  throw new Error(`server ${extra.join(' ')} did not become ready`);
}

async function stopServer(s) {
  if (s.exited()) return;
  process.kill(s.proc.pid, 'SIGTERM');
  const deadline = Date.now() + 10000;
  while (!s.exited() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!s.exited()) process.kill(-s.proc.pid, 'SIGKILL');
}

async function checks(port, label, strict) {
  const client = new OpenAI({ apiKey: KEY, baseURL: `http://127.0.0.1:${port}/v1`,
                              maxRetries: 0, timeout: 30000 });
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  assert.equal(models.length, 1, label);
  const name = models[0].id;

  const messages = [{ role: 'user', content: 'Tell me about the sea.' }];
  const chat = await client.chat.completions.create({ model: name, messages, max_tokens: 16,
                                                      temperature: 0 });
  assert.equal(chat.object, 'chat.completion');
  const text = chat.choices[0].message.content;
  assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens);

  // The SDK's stream helper assembles the same message from the deltas.
  const streamFn = client.chat.completions.stream ?? client.beta.chat.completions.stream;
  const helper = streamFn.call(client.chat.completions.stream ? client.chat.completions
                                                              : client.beta.chat.completions,
                               { model: name, messages, max_tokens: 16, temperature: 0,
                                 stream_options: { include_usage: true } });
  let deltas = '';
  helper.on('content', (delta) => { deltas += delta; });
  const final = await helper.finalChatCompletion();
  assert.equal(final.choices[0].message.content, text, `${label}: streamed chat`);
  assert.equal(deltas, text);
  assert.equal(final.choices[0].finish_reason, chat.choices[0].finish_reason);

  // Raw stream iteration.
  const raw = await client.chat.completions.create({ model: name, messages, max_tokens: 16,
                                                     temperature: 0, stream: true });
  let rawText = '';
  let sawRole = false;
  for await (const chunk of raw) {
    if (chunk.choices[0]?.delta?.role === 'assistant') sawRole = true;
    rawText += chunk.choices[0]?.delta?.content ?? '';
  }
  assert.ok(sawRole);
  assert.equal(rawText, text);

  const comp = await client.completions.create({ model: name, prompt: 'The sea is', max_tokens: 12,
                                                 temperature: 0, stop: null });
  assert.equal(comp.object, 'text_completion');
  const compText = comp.choices[0].text;
  const compStream = await client.completions.create({ model: name, prompt: 'The sea is',
                                                       max_tokens: 12, temperature: 0,
                                                       stream: true });
  let streamed = '';
  for await (const chunk of compStream) streamed += chunk.choices[0]?.text ?? '';
  assert.equal(streamed, compText, `${label}: streamed completion`);

  if (strict) {
    await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages }),
                         (e) => e instanceof OpenAI.NotFoundError && e.status === 404 &&
                                e.code === 'model_not_found');
  } else {
    // Another model's name is served by the loaded one, and the header says so.
    const { data: other, response } = await client.chat.completions
      .create({ model: 'no-such-model', messages, max_tokens: 2 }).withResponse();
    assert.equal(other.model, name, `${label}: served by the loaded model`);
    assert.equal(response.headers.get('x-meshlm-model'), `${name} (asked for no-such-model)`);
  }
  await assert.rejects(client.chat.completions.create({ model: name, messages: [] }),
                       (e) => e instanceof OpenAI.BadRequestError && e.status === 400 &&
                              typeof e.message === 'string');
  await assert.rejects(client.chat.completions.create({ model: name, messages, max_tokens: 'x' }),
                       (e) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
  const wrong = new OpenAI({ apiKey: 'wrong', baseURL: `http://127.0.0.1:${port}/v1`,
                             maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  console.log(`ok: ${label}`);
}

// A compact Hermes-style template (the demo model's context is too short for Qwen's).
const TOOL_TEMPLATE = `{%- if tools %}<|im_start|>system
Tools:{% for t in tools %} {{ t.function.name }}{% endfor %}. Call one as <tool_call>.<|im_end|>
{% endif %}{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>
{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}
</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}`;

async function helperChecks(port) {
  const client = new OpenAI({ apiKey: KEY, baseURL: `http://127.0.0.1:${port}/v1`,
                              maxRetries: 0, timeout: 30000 });
  const { z } = require('zod');
  const { zodResponseFormat, zodFunction } = require('openai/helpers/zod');
  const Pet = z.object({ kind: z.enum(['cat', 'dog', 'fish']), legs: z.number().int(),
                         indoor: z.boolean() });
  for (const seed of [1, 2]) {
    const done = await client.chat.completions.parse({
      model: 'm', messages: [{ role: 'user', content: 'A pet, as JSON.' }], max_tokens: 150,
      temperature: 1, seed, response_format: zodResponseFormat(Pet, 'pet') });
    const msg = done.choices[0].message;
    assert.equal(done.choices[0].finish_reason, 'stop', msg.content);
    assert.ok(msg.parsed, msg.content);
    assert.deepEqual(Pet.parse(msg.parsed), msg.parsed);
  }

  // The tool runner: the forced call runs the local function with parsed arguments.
  const calls = [];
  const runner = client.chat.completions.runTools({
    model: 'm', messages: [{ role: 'user', content: 'Add two numbers.' }], max_tokens: 100,
    temperature: 0.7, seed: 3, parallel_tool_calls: false,
    tool_choice: { type: 'function', function: { name: 'add' } },
    tools: [zodFunction({ name: 'add', parameters: z.object({ a: z.number().int(),
                                                               b: z.number().int() }),
                          function: (args) => { calls.push(args); return String(args.a + args.b); } })],
  });
  await runner.done();
  assert.equal(calls.length, 1, JSON.stringify(runner.messages));
  assert.ok(Number.isInteger(calls[0].a) && Number.isInteger(calls[0].b), JSON.stringify(calls));
  const toolMsg = runner.messages.find((m) => m.role === 'tool');
  assert.equal(toolMsg.content, String(calls[0].a + calls[0].b));
  console.log('ok: structured output and tool helpers');
}

const timer = setTimeout(() => { console.error('timed out'); process.exit(1); }, 240000);
let failed = false;
for (const [label, extra] of [['1 rank', []],
                              ['2 ranks tp=2, strict model', ['-n', '2', '--tp', '2',
                                                              '--strict-model']]]) {
  const server = await startServer(extra);
  try {
    await checks(server.port, label, extra.includes('--strict-model'));
  } catch (e) {
    console.error(`FAILED (${label}):`, e);
    failed = true;
  } finally {
    await stopServer(server);
  }
}
{
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'meshlm-sdk-')), 'tools.jinja');
  fs.writeFileSync(file, TOOL_TEMPLATE);
  const server = await startServer(['--chat-template-file', file]);
  try {
    await helperChecks(server.port);
  } catch (e) {
    console.error('FAILED (helpers):', e);
    failed = true;
  } finally {
    await stopServer(server);
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}
clearTimeout(timer);
process.exit(failed ? 1 : 0);
