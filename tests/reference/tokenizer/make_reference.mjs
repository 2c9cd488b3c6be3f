// make_reference.mjs: the reference ids of the GPT-NeoX-20B tokenizer for tests/test_tokenizer.cpp.
//
// Writes cases.json beside this script: texts with the ids Hugging Face's tokenizers give them (with
// the file itself, with variants of it, and with a tiny tokenizer of this script's own), id lists with
// the text Hugging Face decodes them to, and, for every fortunes file (Debian's fortunes and
// fortunes-min), the id count and a 64-bit FNV-1a digest of the ids of the whole file encoded as one
// text (the corpus itself is not committed; nor is the tokenizer file).
//
// The reference is Hugging Face's own Rust implementation through its Node binding (npm package
// `tokenizers`, the crate compiled for Node; a prebuilt .node file ships inside the npm package).
// Every case and file is also encoded by the pure-JS port (`@huggingface/tokenizers`); where the two
// disagree the case records the JS ids too (known: the JS ByteLevel pre-tokenizer uses JavaScript's
// \s, which counts U+FEFF and not U+0085, where Rust uses Unicode White_Space; and the JS port
// ignores the added tokens' single_word flag and strips with JavaScript's \s).
//
// Regenerate (node 20; outside the repository, nothing is installed into it):
//   mkdir -p /tmp/tokref && cd /tmp/tokref
//   npm install tokenizers@0.23.2 @huggingface/tokenizers@0.2.0
//   node /path/to/tests/reference/tokenizer/make_reference.mjs \
//       [--tokenizer /path/to/gpt-neox-20b-tokenizer.json] [--fortunes /usr/share/games/fortunes]
// Packages are resolved from the current directory. Default tokenizer path: ../shared/data beside
// the repository (as the C++ test finds it).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.cwd(), 'noop.js'));
const rust = require('tokenizers');
const { Tokenizer: JsTokenizer } = require('@huggingface/tokenizers');

// A package's version from its package.json (not exported by every package: read the file).
function packageVersion(name) {
  const file = path.join(process.cwd(), 'node_modules', name, 'package.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')).version;
}
function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const tokenizerPath = arg('--tokenizer', path.resolve(here, '../../../../shared/data/gpt-neox-20b-tokenizer.json'));
const fortunesDir = arg('--fortunes', '/usr/share/games/fortunes');
const outPath = arg('--out', path.join(here, 'cases.json'));

const tokenizerText = fs.readFileSync(tokenizerPath, 'utf8');
const tokenizerJson = JSON.parse(tokenizerText);

// Extra added tokens, appended to the file's for the "flags" cases: every flag of an added token
// (special, lstrip, rstrip, single_word, normalized) and leftmost-longest matching between them.
// cases.json holds them in its variants; the C++ test applies the variants the same way.
// Their contents are not in the model's vocabulary (whose ids an added token would take), so the ids
// are the next free ones in file order, the ids Hugging Face assigns.
const token = (id, content, flags) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
                                         normalized: true, special: false, ...flags });
const extraAddedTokens = [
  token(50277, '<mask>', { lstrip: true, normalized: false, special: true }),
  token(50278, '[R]', { rstrip: true, normalized: false }),
  token(50279, 'qqz', { single_word: true }),
  token(50280, 'e\u0301e', {}),  // normalized: matched as NFC "\u00e9e" in the normalized text
  token(50281, 'e\u0301x', { normalized: false }),  // matched in the raw text only
  token(50282, '<|endoftext|>x', { normalized: false, special: true }),  // longer than <|endoftext|>
  token(50283, 'qkab', {}),
  token(50284, 'qkabc', { normalized: false }),  // the raw pass runs first
  token(50285, '{L}', { single_word: true, lstrip: true, rstrip: true, normalized: false, special: true }),
  token(50286, 'qk', { special: true }),
  token(50287, 'qqr', { rstrip: true }),  // its stripped spaces are also an added token (overlap)
  token(50288, 'qql', { lstrip: true }),
];
for (const t of extraAddedTokens) {
  const byteLevel = Buffer.from(t.content, 'utf8');  // the vocabulary holds byte-level strings
  if (t.content in tokenizerJson.model.vocab || /^[!-~]+$/.test(t.content) && byteLevel.toString() in tokenizerJson.model.vocab)
    throw new Error(`extra added token ${JSON.stringify(t.content)} is in the model's vocabulary`);
}
// A tiny tokenizer of its own: merges as [a, b] pairs, ties between equal ranks, and bytes that have
// no token (dropped, or unk_token with and without fuse_unk).
const tinyJson = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: [{ id: 0, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: null,
  decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  model: {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false, ignore_merges: false,
    vocab: { '<unk>': 0, a: 1, b: 2, c: 3, '\u0120': 4, ab: 5, bc: 6, abc: 7, '\u0120a': 8, aa: 9, aaa: 10, '\u0120ab': 11 },
    merges: [['a', 'b'], ['b', 'c'], ['ab', 'c'], ['\u0120', 'a'], ['a', 'a'], ['aa', 'a'], ['\u0120a', 'b']],
  },
};

// Variants, each a base (the file, or the tiny tokenizer) and a list of changes the C++ test applies
// the same way: `append` adds to an array, `set` replaces a value (a dotted path: a member's member).
const variants = {
  flags: { base: 'file', changes: [{ append: 'added_tokens', values: extraAddedTokens }] },
  prefix_space: { base: 'file', changes: [{ set: 'pre_tokenizer', value: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } }] },
  no_regex: { base: 'file', changes: [{ set: 'pre_tokenizer', value: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false } }] },
  no_normalizer: { base: 'file', changes: [{ set: 'normalizer', value: null }] },
  ignore_merges: { base: 'file', changes: [{ set: 'model.ignore_merges', value: true }] },
  tiny: { base: 'tiny', changes: [] },
  tiny_unk: { base: 'tiny', changes: [{ set: 'model.unk_token', value: '<unk>' }] },
  tiny_fuse_unk: { base: 'tiny', changes: [{ set: 'model.unk_token', value: '<unk>' }, { set: 'model.fuse_unk', value: true }] },
};
function applyVariant(json, changes) {
  const out = structuredClone(json);
  for (const change of changes) {
    const keys = (change.append ?? change.set).split('.');
    let parent = out;
    for (const key of keys.slice(0, -1)) parent = parent[key];
    const last = keys[keys.length - 1];
    if (change.append) parent[last].push(...structuredClone(change.values));
    else parent[last] = structuredClone(change.value);
  }
  return out;
}
const variantTokenizers = {};
for (const [name, { base, changes }] of Object.entries(variants)) {
  const json = applyVariant(base === 'tiny' ? tinyJson : tokenizerJson, changes);
  variantTokenizers[name] = { rust: rust.Tokenizer.fromString(JSON.stringify(json)), js: new JsTokenizer(json, {}) };
}

const rustNeox = rust.Tokenizer.fromString(tokenizerText);
const jsNeox = new JsTokenizer(tokenizerJson, {});

async function rustIds(tok, text) {
  const encoding = await tok.encode(text, null, { addSpecialTokens: false });
  return Array.from(encoding.getIds());
}
const jsIds = (tok, text) => Array.from(tok.encode(text, { add_special_tokens: false }).ids);

// ---- the cases ------------------------------------------------------------------------------
const texts = [];
const add = (name, text) => texts.push({ name, text });
const addBytes = (name, hex) => texts.push({ name, bytes_hex: hex });
const addFlags = (name, text) => texts.push({ name, text, tokenizer: 'flags' });
const addVariant = (variant, name, text) => texts.push({ name: `${variant} ${name}`, text, tokenizer: variant });

add('empty', '');
add('one space', ' ');
add('one newline', '\n');
add('hello world', 'Hello world');
add('hello punctuated', 'Hello, world!');
add('pangram', 'The quick brown fox jumps over the lazy dog.');
add('upper case', 'HELLO WORLD, THIS IS LOUD');
add('paragraph',
    'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of ' +
    'foolishness, it was the epoch of belief, it was the epoch of incredulity.\n\nIt was the season of Light.');
add('names and abbreviations', 'Mr. O\'Neil met Dr. Smith at 5 p.m. on Jan. 3rd, 2024 (U.S.A.).');
// Contractions: lowercase only, case-sensitive.
for (const t of ["I'm", "I'M", "don't", "DON'T", "Don't", "'s", "'S", "it's", "IT'S", "we've", "WE'VE",
                 "they're", "THEY'RE", "you'll", "YOU'LL", "he'd", "HE'D", "'ll", "'re'", "''s", "'sup",
                 "rock 'n' roll", "x's'", "’s (U+2019)", "'", "'''"])
  add(`contraction ${t}`, t);
// Whitespace runs: alone, between words, before punctuation.
for (let n = 1; n <= 30; ++n) add(`${n} spaces`, ' '.repeat(n));
for (let n = 1; n <= 30; ++n) add(`${n} spaces between words`, 'a' + ' '.repeat(n) + 'b');
for (const n of [2, 3, 5, 25, 26]) add(`${n} spaces before punctuation`, 'x' + ' '.repeat(n) + '.');
for (const n of [24, 25, 48, 49]) add(`${n} spaces then newline`, 'x' + ' '.repeat(n) + '\nyz');
add('tab', '\t');
add('tabs', '\t\t\t');
add('tab between words', 'a\tb');
add('two tabs between words', 'a\t\tb');
add('tab indent', '\tindented\n\t\tmore');
add('space tab space', 'a \t b');
add('CRLF lines', 'line one\r\nline two\r\n');
add('CRLF blank lines', '\r\n\r\n');
add('CRLF paragraph', 'a\r\n\r\nb');
add('trailing spaces', 'end  ');
add('trailing mixed whitespace', 'end \t\n ');
add('trailing newlines', 'x\n\n\n');
add('space newline space', 'x \n y');
add('leading whitespace', '  \n\n  x');
add('newline runs', 'a\n\n\n\nb\n \n c');
add('form feed and vertical tab', 'a\f\vb\x0b');
add('no-break space', '\u00a0');
add('no-break space between', 'a\u00a0b');
add('ideographic space', 'a\u3000b');
add('em spaces', 'a \u2003 b\u2003\u2003c');
add('line separator', 'a\u2028b\u2029c');
add('next line U+0085', 'a\u0085b \u0085 c');
add('byte order mark U+FEFF', '\ufeffBOM and a\ufeff b');
add('U+0085 run', 'a\u0085\u0085b');
add('space before U+FEFF', 'x \ufeffy');
add('space before U+0085', 'x \u0085y');
add('zero width space (not whitespace)', 'a\u200bb \u200b c');
add('narrow no-break space', '10\u202f000 km');
// Code.
add('C++', '#include <vector>\n\nint main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n  return v[0] == 2 ? 0 : 1;  // ok\n}\n');
add('C++ templates', 'template <typename T, std::size_t N>\nconstexpr T sum(const std::array<T, N>& a) noexcept {\n\treturn std::accumulate(a.begin(), a.end(), T{});\n}');
add('Python', 'def fib(n):\n    """Return the n-th Fibonacci number."""\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\nif __name__ == "__main__":\n    print(fib(10))\n');
add('Python deep indentation', 'class A:\n    def f(self):\n        if True:\n            for i in x:\n                while y:\n                    pass\n');
add('JSON', '{"key": [1, 2.5, -3e10, true, null], "nested": {"a": "b\\n"}}');
add('shell', 'for f in *.txt; do echo "$f" | sed -e \'s/a/b/g\' >> out.log 2>&1; done');
add('HTML', '<!DOCTYPE html>\n<html><body class="x">&nbsp;&amp;<br/></body></html>');
add('URL', 'https://example.com/path/to?q=1&r=two#frag');
// Non-Latin scripts.
add('Chinese', '我们今天去公园散步，天气非常好。');
add('Japanese', '東京は日本の首都です。ひらがなとカタカナ、そして漢字。');
add('Korean', '안녕하세요, 세계! 한국어 텍스트입니다.');
add('Arabic', 'مرحبا بالعالم! هذه جملة باللغة العربية.');
add('Hindi', 'नमस्ते दुनिया, यह हिंदी में एक वाक्य है।');
add('Russian', 'Привет, мир! Съешь же ещё этих мягких французских булок.');
add('Greek', 'Γειά σου Κόσμε· ξεσκεπάζω την ψυχοφθόρα βδελυγμία.');
add('Hebrew', 'שלום עולם, זה משפט בעברית.');
add('Thai', 'สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ');
add('mixed scripts', 'English, русский, 中文 and العربية in one line.');
add('Latin diacritics', 'naïve café, Ünïcödé, straße, İstanbul, ǅemal, Øre, Łódź');
// Emoji.
add('emoji', '😀');
add('emoji skin tone', '👍🏽');
add('emoji ZWJ family', '👨‍👩‍👧‍👦');
add('emoji rainbow flag', '🏳️‍🌈');
add('emoji flags', '🇯🇵🇺🇸🇩🇪');
add('emoji variation selector', '❤️ and ❤');
add('emoji between letters', 'a😀b 😀😀😀 c');
add('emoji keycap', '1️⃣ #️⃣');
// Combining marks and text that NFC changes.
add('e + combining acute', 'e\u0301');
add('cafe decomposed', 'cafe\u0301 au lait');
add('n + combining tilde', 'man\u0303ana');
add('A + ring', 'A\u030a');
add('Angstrom sign', '\u212b');
add('Ohm sign', '\u2126');
add('Hangul jamo', '\u1100\u1161\u11a8');
add('x + acute (no composite)', 'x\u0301');
add('lone combining acute', '\u0301');
add('reordered marks', 'q\u0307\u0323 and s\u0323\u0307');
add('fi ligature (NFC keeps)', '\ufb01ne');
add('composed and decomposed', '\u00e4 a\u0308');
add('combining mark after special token', '<|endoftext|>\u0301x');
add('Devanagari nukta', '\u0915\u093c');
// Digits and numbers.
add('digits', '123');
add('long number', '1234567890123');
add('decimal', '3.14159');
add('thousands', '1,000,000 and 1.000.000');
add('letters and digits', 'x2 2x abc123def');
add('Arabic-Indic digits', '٣٤٥ ۶۷۸');
add('vulgar fraction', '½ cup');
add('Roman numeral letter', 'Ⅻ ⅻ');
add('superscripts', 'x² + y³');
add('fullwidth digits', '１２３');
// Special tokens inside text.
add('endoftext', '<|endoftext|>');
add('endoftext with spaces', ' <|endoftext|> ');
add('endoftext between words', 'a<|endoftext|>b');
add('two endoftexts', '<|endoftext|><|endoftext|>');
add('padding token', '<|padding|>');
add('document boundary', 'The end.<|endoftext|>\n\nChapter 1');
add('endoftext with spaces around', 'first doc <|endoftext|> second doc');
add('truncated special token', '<|endoftext');
add('special token wrong case', '<|ENDOFTEXT|>');
add('special token within spaces run', '      <|endoftext|>      x');
// Punctuation runs.
for (const t of ['!!!', '?!?!', '...', 'a...b', '--', '---', '(a)', '[[x]]', '@#$%^&*()', '"quoted"',
                 'a+b=c', '~~~~~~~~', '=====', '-->', '/* */', '\\\\', '«»', '“smart quotes”', '…', '—', '¿Qué?'])
  add(`punctuation ${t}`, t);
// Control characters.
add('NUL', '\u0000');
add('NUL between', 'a\u0000b');
add('ANSI escape', '\u001b[31mred\u001b[0m');
add('DEL', 'a\u007fb');
// Long words (the BPE of long pre-tokens; beyond the cache's word length).
add('1000 a', 'a'.repeat(1000));
add('ab x 600', 'ab'.repeat(600));
add('long mixed', 'Lorem ipsum dolor sit amet, '.repeat(40));
add('long punctuation run', '=-'.repeat(300));
add('long digits', '0123456789'.repeat(50));
// Bytes that are not UTF-8: the text is what a WHATWG TextDecoder (and Rust's from_utf8_lossy) reads.
addBytes('invalid byte 0xff', 'ff');
addBytes('invalid byte between letters', '61ff62');
addBytes('truncated 2-byte sequence', 'c3');
addBytes('truncated 3-byte sequence then letter', 'e28241');
addBytes('UTF-8 encoded surrogate', 'eda080');
addBytes('beyond U+10FFFF', 'f4908080');
addBytes('overlong slash', 'c0af');
addBytes('lone continuation byte', '80');
addBytes('truncated 4-byte sequence then A', 'f09f9841');
addBytes('valid euro sign', 'e282ac');
addBytes('mixed valid and invalid', '48656c6c6fc328e282ac2077fe6f726c64');
// Added tokens with every flag (the "flags" tokenizer: the file plus extraAddedTokens).
for (const t of ['a <mask> b', 'a   <mask>b', '<mask>', ' \t <mask>', 'a\u3000<mask>', 'a\u0085<mask>',
                 'x[R]   y', '[R]\n\nz', '[R]', '[R]\u0085b', 'a qqz b', 'aqqz', 'qqzs', 'qqz', '(qqz)', 'qqz.',
                 'qqz\u00e4', '\u24d0qqz', 'qqz\u200d', '1qqz', '_qqz', 'qqz\u00b2', 'x\u0301qqz', 'qqz-qqz',
                 'qqz qqz', 'qqz\u4e2d', '\u00e9e', 'e\u0301e', 'e\u0301x', '\u00e9x', 'e\u0301 x',
                 '<|endoftext|>x', '<|endoftext|>y', '<|endoftext|>xx', 'qkabc', 'qkab', 'qk', 'qka', 'xqkab',
                 'qqkab', '[R]<mask>', '[R]   <mask>', '<mask>[R]', '{L}', 'a {L} b', 'a{L}b', 'a  {L}  b',
                 '{L}{L}', ' {L} {L} ', 'qqr     x', 'qqr  \n x', 'qqr', 'x     qql', 'x qql y', 'qqlqqr'])
  addFlags(`flags ${JSON.stringify(t)}`, t);
// The other variants: the pre-tokenizer's options, no normalizer, ignore_merges.
const variantTexts = ['Hello world', ' Hello world', '  two spaces', 'a\nb', 'e\u0301 and \u00e9', "I'm here",
                      '<|endoftext|>Hello <|endoftext|> world', '      x', 'x    ', 'The quick brown fox.',
                      'def f(x):\n    return x', '1234567', 'Привет мир', ' ', ''];
for (const variant of ['prefix_space', 'no_regex', 'no_normalizer', 'ignore_merges'])
  for (const t of variantTexts) addVariant(variant, JSON.stringify(t), t);
for (const t of ['estimating', 'unbelievably', 'GPTNeoX', 'tokenization', 'hellohello', ' Antidisestablishmentarianism'])
  addVariant('ignore_merges', JSON.stringify(t), t);
for (const variant of ['tiny', 'tiny_unk', 'tiny_fuse_unk'])
  for (const t of ['abc', 'ab', 'bc', 'aaaa', 'aaaaa', 'abcz', 'zz a', 'a zzz b', 'xyz', 'ab ab abc', 'caab',
                   '\u00e9', '\u{1F600}', ''])
    addVariant(variant, JSON.stringify(t), t);

// ---- encode -----------------------------------------------------------------------------------
const cases = [];
let jsDisagreements = 0;
for (const c of texts) {
  const text = c.bytes_hex !== undefined ? new TextDecoder('utf-8').decode(Buffer.from(c.bytes_hex, 'hex')) : c.text;
  const variant = c.tokenizer ? variantTokenizers[c.tokenizer] : { rust: rustNeox, js: jsNeox };
  const ids = await rustIds(variant.rust, text);
  const js = jsIds(variant.js, text);
  const out = { name: c.name };
  if (c.bytes_hex !== undefined) out.bytes_hex = c.bytes_hex; else out.text = c.text;
  if (c.tokenizer) out.tokenizer = c.tokenizer;
  out.ids = ids;
  if (JSON.stringify(js) !== JSON.stringify(ids)) {
    out.js_ids = js;
    ++jsDisagreements;
  }
  cases.push(out);
}

// ---- decode: ids to text, with and without the special tokens -----------------------------------
const decodeIdLists = [
  [0], [0, 1], [12092, 1533, 0, 1], [50273, 89], [209], [165], [165, 860], [13609], [0, 13609, 0],
  [50277 - 23, 50276], (await rustIds(rustNeox, '😀')).slice(0, 1), (await rustIds(rustNeox, '😀 ok')).slice(1),
  await rustIds(rustNeox, 'Mixed <|endoftext|> text\n<|padding|>  end'), [],
];
const decodeCases = [];
for (const ids of decodeIdLists)
  for (const skip of [false, true]) decodeCases.push({ ids, skip_special: skip, text: await rustNeox.decode(ids, skip) });

// ---- the fortunes corpus ----------------------------------------------------------------------
// FNV-1a, 64 bits, over bytes.
function fnv1a64(bytes, hash = 0xcbf29ce484222325n) {
  for (const b of bytes) hash = BigInt.asUintN(64, (hash ^ BigInt(b)) * 0x100000001b3n);
  return hash;
}
function idsDigest(ids) {
  const buffer = Buffer.alloc(ids.length * 4);
  ids.forEach((id, i) => buffer.writeInt32LE(id, i * 4));
  return fnv1a64(buffer);
}
const hex = (h) => h.toString(16).padStart(16, '0');
const corpus = [];
let corpusJsDisagreements = 0;
const files = fs.readdirSync(fortunesDir).filter((f) => !f.includes('.')).sort();
for (const file of files) {
  const bytes = fs.readFileSync(path.join(fortunesDir, file));
  const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);  // throws unless valid UTF-8
  const ids = await rustIds(rustNeox, text);
  const js = jsIds(jsNeox, text);
  const entry = { file, bytes: bytes.length, file_fnv1a64: hex(fnv1a64(bytes)), count: ids.length,
                  ids_fnv1a64: hex(idsDigest(ids)) };
  if (JSON.stringify(js) !== JSON.stringify(ids)) {
    entry.js_differs = true;
    ++corpusJsDisagreements;
  }
  corpus.push(entry);
}

const result = {
  comment: 'Generated by make_reference.mjs: the ids of Hugging Face tokenizers (Rust, Node binding) for ' +
           'the GPT-NeoX-20B tokenizer.json, encode without added special tokens. js_ids: where the ' +
           'pure-JS port disagrees. corpus: whole fortunes files, FNV-1a 64 over the ids as little-endian int32.',
  reference: `tokenizers (npm, Rust binding) ${packageVersion('tokenizers')}; ` +
             `@huggingface/tokenizers ${packageVersion('@huggingface/tokenizers')}`,
  tokenizer_file_bytes: Buffer.byteLength(tokenizerText),
  tiny_tokenizer: tinyJson,
  variants,
  cases,
  decode_cases: decodeCases,
  corpus,
};
fs.writeFileSync(outPath, JSON.stringify(result, null, 1) + '\n');
console.log(`${cases.length} cases (${jsDisagreements} where the pure-JS port disagrees), ${decodeCases.length} decode cases, ` +
            `${corpus.length} corpus files (${corpusJsDisagreements} where it disagrees) -> ${outPath}`);
