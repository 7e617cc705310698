// Writes tests/data/tokenizer/chat_templates.json: each real chat template (from the
// tokenizer_config.json files fetched by tools/tokenizer_fetch_vocabs.sh) rendered by
// @huggingface/jinja on a fixed set of conversations, or the error it raised.
//
//   mkdir -p /tmp/golden && cd /tmp/golden && npm install @huggingface/jinja@0.5.11
//   NODE_PATH=/tmp/golden/node_modules node tools/golden_chat_templates.js /tmp/vocabs \
//       tests/data/tokenizer/chat_templates.json
'use strict';
const fs = require('fs');
const path = require('path');
const { Template } = require('@huggingface/jinja');

// strftime_now() reads the clock: pin it (with TZ=UTC) so that the golden file is stable.
// The tests give the renderer the same instant.
const kFixedNowMs = Date.UTC(2025, 2, 5, 12, 0, 0);
process.env.TZ = 'UTC';
const RealDate = Date;
global.Date = class extends RealDate {
  constructor(...args) { if (args.length === 0) super(kFixedNowMs); else super(...args); }
  static now() { return kFixedNowMs; }
};

const kTools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Get the current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', description: 'City name' },
                    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
      required: ['city'],
    },
  },
}];

const kConversations = {
  single: { messages: [{ role: 'user', content: 'Hello! How are you?' }] },
  system_multi_turn: {
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '2+2 equals 4.' },
      { role: 'user', content: '  And 3+3?  \n' },
    ],
  },
  unicode_multi_turn: {
    messages: [
      { role: 'user', content: 'Bonjour 👋 "quotes" and \\ backslash' },
      { role: 'assistant', content: 'Salut ! 你好' },
      { role: 'user', content: 'مرحبا\n\nनमस्ते' },
    ],
  },
  tools_object_arguments: {
    tools: kTools,
    messages: [
      { role: 'system', content: 'You can call tools.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'call12345', type: 'function',
        function: { name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } } }] },
      { role: 'tool', tool_call_id: 'call12345', content: '{"temperature": 21}' },
    ],
  },
  tools_string_arguments: {
    tools: kTools,
    messages: [
      { role: 'user', content: 'Weather in Oslo?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'callABCDE', type: 'function',
        function: { name: 'get_weather', arguments: '{"city": "Oslo"}' } }] },
      { role: 'tool', tool_call_id: 'callABCDE', content: 'Sunny, 5 degrees' },
      { role: 'assistant', content: 'It is sunny in Oslo.' },
    ],
  },
  reasoning: {
    messages: [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '<think>\nSimple sum.\n</think>\n\n2+2 is 4.' },
      { role: 'user', content: 'Thanks' },
    ],
  },
  no_thinking: { messages: [{ role: 'user', content: 'Hi' }], enable_thinking: false },
  date_string: { messages: [{ role: 'user', content: 'Date?' }], date_string: '23 Nov 2026' },
  roles_not_alternating: {
    messages: [{ role: 'user', content: 'one' }, { role: 'user', content: 'two' }],
  },
};

function ConfigToken(config, key) {
  const v = config[key];
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof v.content === 'string') return v.content;
  return '';
}

function Main() {
  const [vocab_dir, out_file] = process.argv.slice(2);
  if (!vocab_dir || !out_file) throw new Error('usage: golden_chat_templates.js VOCAB_DIR OUT');
  const out = { reference: '@huggingface/jinja@0.5.11', now_unix: kFixedNowMs / 1000,
                conversations: kConversations, models: {} };
  for (const name of fs.readdirSync(vocab_dir).sort()) {
    const file = path.join(vocab_dir, name, 'tokenizer_config.json');
    if (!fs.existsSync(file)) continue;
    const config = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (typeof config.chat_template !== 'string') continue;
    const template = new Template(config.chat_template);
    const results = {};
    for (const [conv_name, conv] of Object.entries(kConversations)) {
      for (const add_generation_prompt of [false, true]) {
        const context = { ...conv, add_generation_prompt,
                          bos_token: ConfigToken(config, 'bos_token'),
                          eos_token: ConfigToken(config, 'eos_token') };
        const key = `${conv_name}/${add_generation_prompt ? 'gen' : 'nogen'}`;
        try {
          results[key] = { output: template.render(context) };
        } catch (e) {
          results[key] = { error: String(e.message || e) };
        }
      }
    }
    out.models[name] = results;
    console.log(`${name}: ${Object.keys(results).length} renders`);
  }
  fs.writeFileSync(out_file, JSON.stringify(out, null, 1) + '\n');
}

Main();
