// Writes tests/data/tokenizer/variants.json: real vocabularies (gpt2, llama2) with their
// pipeline stages replaced, to pin down against Hugging Face's tokenizers the stages no
// shipped model uses (added-token flags, NFKC, Strip, Split behaviours, Digits,
// Metaspace). The test applies the same patch to the same base file.
//
//   NODE_PATH=/tmp/golden/node_modules node tools/golden_tokenizer_variants.js /tmp/vocabs \
//       tests/data/tokenizer/variants.json
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const kByteLevelNoRegex = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
function Added(id, content, flags) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false,
           special: false, ...flags };
}

const kVariants = [
  { name: 'added_token_flags', base: 'gpt2',
    patch: { normalizer: { type: 'NFKC' } },
    added: [Added(50257, '<tag>', { lstrip: true, special: true }),
            Added(50258, '[X]', { rstrip: true }),
            Added(50259, 'cat', { single_word: true, normalized: true }),
            Added(50260, 'ÅB', { normalized: true }),
            Added(50261, '<both>', { lstrip: true, rstrip: true, special: true })],
    inputs: ['a <tag>b', 'x   <tag>   y', '[X]   z [X]', 'concatenate cat cat_ (cat) cats, cat.',
             'A\u030aB and ÅB', '  <both>  mid  <both>  ', '<tag><tag>[X][X]', 'ｃａｔ ＜tag＞'] },
  { name: 'nfkc_strip_replace_prefix', base: 'gpt2',
    patch: { normalizer: { type: 'Sequence', normalizers: [
               { type: 'NFKC' }, { type: 'Strip', strip_left: true, strip_right: true },
               { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }] },
             pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } } },
  { name: 'split_removed', base: 'gpt2',
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Removed', invert: false }, kByteLevelNoRegex] } } },
  { name: 'split_merged_with_previous', base: 'gpt2',
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false }, kByteLevelNoRegex] } } },
  { name: 'split_merged_with_next', base: 'gpt2',
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false }, kByteLevelNoRegex] } } },
  { name: 'split_contiguous_inverted', base: 'gpt2',
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '[a-z]' }, behavior: 'Contiguous', invert: true }, kByteLevelNoRegex] } } },
  { name: 'digits_individual', base: 'gpt2',
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Digits', individual_digits: true }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true }] } } },
  { name: 'digits_grouped', base: 'gpt2',
    patch: { pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Digits', individual_digits: false }, kByteLevelNoRegex] } } },
  { name: 'metaspace_first', base: 'llama2',
    patch: { normalizer: null,
             pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true },
             decoder: { type: 'Sequence', decoders: [
               { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true },
               { type: 'ByteFallback' }, { type: 'Fuse' }] } } },
  { name: 'metaspace_always_nosplit', base: 'llama2',
    patch: { normalizer: null,
             pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: false },
             decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: false } } },
];

const kCommonInputs = [
  '', 'Hello, world! This is a test.', '  two  spaces and\ttab\n\nnew lines  ',
  'Numbers 1234567 and 3.14, v2.0-rc1', 'Ｆｕｌｌｗｉｄｔｈ ①②③ ﬁ ㎏ Cafe\u0301',
  'emoji 👨‍👩‍👧 🇯🇵 and 你好 and नमस्ते', '<s>special</s> <tag> [X]', 'a\u0085b\u2028c\u00a0d',
];

async function Main() {
  const [vocab_dir, out_file] = process.argv.slice(2);
  if (!vocab_dir || !out_file) throw new Error('usage: golden_tokenizer_variants.js VOCAB_DIR OUT');
  const out = { reference: 'tokenizers@0.23.2', variants: [] };
  for (const v of kVariants) {
    const base = JSON.parse(fs.readFileSync(path.join(vocab_dir, v.base, 'tokenizer.json'), 'utf8'));
    Object.assign(base, v.patch);
    if (v.added) base.added_tokens = base.added_tokens.concat(v.added);
    const tok = Tokenizer.fromString(JSON.stringify(base));
    const cases = [];
    for (const text of kCommonInputs.concat(v.inputs || [])) {
      const enc = await tok.encode(text, null, { addSpecialTokens: false });
      cases.push({ text, ids: enc.getIds(), decoded: await tok.decode(enc.getIds(), false) });
    }
    out.variants.push({ name: v.name, base: v.base, patch: v.patch, added: v.added || [], cases });
    console.log(`${v.name}: ${cases.length} cases`);
  }
  fs.writeFileSync(out_file, JSON.stringify(out) + '\n');
}

Main().catch((e) => { console.error(e); process.exit(1); });
