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

// Small templates that exercise one feature each, rendered with kSnippetContext.
const kSnippets = [
  "{{ 'Hello World'|upper }}|{{ 'ABC'|lower }}|{{ 'hello world-wide'|title }}|{{ 'hello'|capitalize }}",
  "{{ '  pad  '|trim }}|{{ '  pad  '.lstrip() }}|{{ '  pad  '.rstrip() }}|{{ '\n\tx\n'.strip('\n') }}|",
  "{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a-b-c'.split('-', 1) }}",
  "{{ 'aXbXc'.replace('X', '_') }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abc'|replace('b', '') }}",
  "{{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'abc' is string }}{{ 3 is number }}",
  "{{ [3, 1, 2]|sort }}|{{ [3, 1, 2]|reverse }}|{{ [1, 2, 2, 3]|unique }}|{{ [1, 2, 3]|first }}{{ [1, 2, 3]|last }}|{{ [1, 2, 3]|length }}",
  "{{ ['a', 'b']|join(', ') }}|{{ [1, 2]|join }}|{{ 'abc'|join('-') }}",
  "{{ {'a': 1, 'b': [1, 2]}|tojson }}|{{ {'a': 1, 'b': [1, 2], 'c': {}}|tojson(indent=2) }}|{{ 'é\"\\n'|tojson }}",
  "{{ x|default('d') }}|{{ ''|default('e', true) }}|{{ none|default('n') }}",
  "{% for k, v in {'x': 1, 'y': 2}.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}",
  "{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}|{% for i in range(1, 10, 3) %}{% if i == 4 %}{% continue %}{% endif %}{{ i }}{% else %}empty{% endfor %}|{% for i in [] %}x{% else %}empty{% endfor %}",
  "{% for x in items if x.ok %}{{ loop.index }}/{{ loop.length }}:{{ x.n }}{{ ',' if not loop.last }}{% endfor %}",
  "{{ items|selectattr('ok')|map(attribute='n')|list }}|{{ items|rejectattr('ok')|list|length }}|{{ items|selectattr('n', 'equalto', 'b')|list|tojson }}",
  "{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 % 3 }}|{{ -7 // 2 }}|{{ 2 ** 10 }}|{{ 1 / 4 }}|{{ 0.1 + 0.2 }}|{{ 3.0 }}|{{ 10 / 2 }}",
  "{{ 'a' ~ 1 ~ true }}",
  "{{ 'a' ~ none }}",
  "{{ 'x' in 'xyz' }}{{ 'q' not in 'xyz' }}{{ 2 in [1, 2] }}{{ 'a' in {'a': 1} }}{{ y in z }}",
  "{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set s %}block {{ a }}{% endset %}[{{ s }}]",
  "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}",
  "a  {%- if true %}  b  {% endif -%}  c\n  {# c #}  d\n{% if true %}\n  e\n{% endif %}\nf\n    {%- set q = 1 %}\n  g {{- ' h ' -}} i\n",
  "{{ messages[0]['content'] }}|{{ messages[-1].role }}|{{ messages|length }}|{{ messages[1:]|length }}",
  "{{ 1 == 1.0 }}{{ 'a' == 'a' }}{{ none == none }}{{ x == none }}{{ [1] == [1] }}{{ 1 != 2 }}",
  "{{ true }}|{{ 3.0 }}|{{ 2.5 }}|{{ none }}|{{ [1, 'a', none, true] }}|{{ {'k': 1.5} }}|{{ x }}",
  "{{ 'abcdef'[1:4] }}|{{ 'abcdef'[::-2] }}|{{ [1, 2, 3, 4, 5][-2:] }}|{{ 'héllo'[1] }}|{{ [1, 2, 3][5] }}|{{ d['zz'] }}|{{ x.y }}",
  "{{ 'x' * 3 }}",
  "{% set ns = namespace(items=[], n=0) %}{% for i in [1, 2] %}{% set ns.items = ns.items + [i] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.items }} {{ ns.n }}",
  "{{ d.get('a') }}|{{ d.get('z', 'def') }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d|length }}|{{ d|items|list }}",
  "{{ 'line1\nline2\n\nline4'|indent(2) }}|{{ 'a\nb'|indent(2, true) }}",
  "{{ 42|string }}{{ 4.0|string }}{{ '7'|int + 1 }}{{ '2.5'|float }}{{ 3.7|int }}{{ -3|abs }}",
  "{{ 'date: ' + strftime_now('%Y-%m-%d %H:%M %B %b') }}",
  "{{ raise_exception('custom message') }}",
  "{% if a is defined and a %}A{% elif b is not none %}B{% else %}C{% endif %}",
  "{{ tools|tojson(indent=4) }}",
  "{{ 'é😀'|tojson(ensure_ascii=true) }}|{{ dictx|dictsort }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}",
  "{{ 'Ünïcode'|upper }}{{ 'ß'|upper }}|{{ 'abc'|length }}{{ '😀'|length }}",
  "{{ messages|map(attribute='role')|join(',') }}|{% for m in messages %}{{ loop.previtem.role if loop.previtem else '-' }}>{{ m.role }};{% endfor %}",
  "{% for m in messages %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{% endfor %}",
  "{{ 'a' if b else 'c' }}{{ 'x' if false }}|{{ not b }}|{{ b and 'yes' }}|{{ none or 'fallback' }}",
  "{{ (messages|selectattr('role', 'equalto', 'user')|list)[0].content }}|{{ messages|selectattr('missing', 'undefined')|list|length }}",
  "{{ undefined_var.attr }}|{{ 5|float }}|{{ [1, [2, 3]]|tojson }}|{{ 'a\tb' }}",
  "a {% generation %}b{% endgeneration %} c|x  {%- generation -%}  y  {% endgeneration -%}\n z",
  "{% for m in messages %}\n  {% generation %}\n{{ m.role }}\n  {%- endgeneration %}\n{% endfor %}",
  "{% for i in [1, 2, 3] %}{{ i }}{% if i == 2 %}{% break %}{% endif %}{% endfor %}|{% macro f() %}{% break %}{% endmacro %}{% for i in [1, 2] %}{{ i }}{{ f() }}{% endfor %}",
  "a{% break %}b",
  "{{ 'unterminated",
  "{% for %}",
  "{{ 1 + }}",
];

const kSnippetContext = {
  items: [{ n: 'a', ok: true }, { n: 'b', ok: false }, { n: 'c', ok: true }],
  d: { a: 1, b: 2 }, dictx: { b: 2, a: 1, C: 3 }, b: 1,
  messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }],
  tools: kTools,
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
  out.snippet_context = kSnippetContext;
  out.snippets = kSnippets.map((source) => {
    try {
      return { source, output: new Template(source).render(kSnippetContext) };
    } catch (e) {
      return { source, error: String(e.message || e) };
    }
  });
  fs.writeFileSync(out_file, JSON.stringify(out, null, 1) + '\n');
}

Main();
