// A small Markdown renderer for the model's answers: fenced and indented code blocks,
// headings, paragraphs, lists, block quotes, tables, rules; inline code, bold, italic,
// strike-through and links. It builds DOM nodes and never parses text as HTML, so
// whatever the model writes shows as text. Half-written input (a stream in progress,
// an unclosed fence) renders as far as it goes.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^(\s*)([-*+])\s+(.*)$/;
const ORDERED = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// Links only to http(s) and mailto: a model's "javascript:" link stays text.
function safeUrl(url) {
  return /^(https?:|mailto:)/i.test(url) ? url : null;
}

// Inline spans of one block's text into `parent`.
export function renderInline(text, parent) {
  let i = 0;
  let plain = '';
  const flush = () => {
    if (plain) parent.appendChild(document.createTextNode(plain));
    plain = '';
  };
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && /[\\`*_{}[\]()#+\-.!~|>]/.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === '`') {
      let ticks = 1;
      while (text[i + ticks] === '`') ticks++;
      const fence = '`'.repeat(ticks);
      const end = text.indexOf(fence, i + ticks);
      if (end > 0) {
        flush();
        parent.appendChild(el('code', null, text.slice(i + ticks, end).replace(/^ (.*) $/, '$1')));
        i = end + ticks;
        continue;
      }
    }
    const pair = (mark, tag) => {
      if (!text.startsWith(mark, i)) return false;
      const end = text.indexOf(mark, i + mark.length);
      if (end <= i + mark.length || /\s/.test(text[i + mark.length])) return false;
      flush();
      const e = el(tag);
      renderInline(text.slice(i + mark.length, end), e);
      parent.appendChild(e);
      i = end + mark.length;
      return true;
    };
    if (pair('**', 'strong') || pair('__', 'strong') || pair('~~', 'del')) continue;
    if ((c === '*' || (c === '_' && !/\w/.test(text[i - 1] || ''))) && pair(c, 'em')) continue;
    if (c === '[') {
      const m = /^\[([^\]]*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)/.exec(text.slice(i));
      if (m) {
        flush();
        const url = safeUrl(m[2]);
        if (url) {
          const a = el('a');
          a.href = url;
          a.rel = 'noopener noreferrer';
          a.target = '_blank';
          renderInline(m[1], a);
          parent.appendChild(a);
        } else {
          parent.appendChild(document.createTextNode(m[0]));
        }
        i += m[0].length;
        continue;
      }
    }
    if (c === '\n') {
      // Two trailing spaces or a backslash make a hard break; a plain newline a space.
      if (/ {2}$/.test(plain)) {
        plain = plain.replace(/ +$/, '');
        flush();
        parent.appendChild(el('br'));
      } else {
        plain += ' ';
      }
      i++;
      continue;
    }
    plain += c;
    i++;
  }
  flush();
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => c.trim());
}

function codeBlock(lang, code) {
  const pre = el('pre');
  const codeEl = el('code', lang ? `lang-${lang}` : null, code);
  if (lang) codeEl.dataset.lang = lang;
  pre.appendChild(codeEl);
  const copy = el('button', 'copy', 'copy');
  copy.type = 'button';
  copy.addEventListener('click', () => {
    navigator.clipboard?.writeText(code).then(() => { copy.textContent = 'copied'; },
                                              () => { copy.textContent = 'not copied'; });
  });
  pre.appendChild(copy);
  return pre;
}

// Blocks of `lines` into `parent`.
function renderBlocks(lines, parent) {
  let i = 0;
  const isBlockStart = (l) => FENCE.test(l) || HEADING.test(l) || RULE.test(l) ||
                              BULLET.test(l) || ORDERED.test(l) || QUOTE.test(l);
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    let m;
    if ((m = FENCE.exec(line))) {
      const close = new RegExp(`^ {0,3}${m[1][0]}{${m[1].length},}\\s*$`);
      const body = [];
      i++;
      while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
      i++;  // the closing fence, if any
      parent.appendChild(codeBlock(m[2], body.join('\n')));
      continue;
    }
    if (/^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || !lines[i].trim())) {
        body.push(lines[i++].replace(/^( {4}|\t)/, ''));
      }
      while (body.length && !body[body.length - 1].trim()) body.pop();
      parent.appendChild(codeBlock('', body.join('\n')));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      const h = el(`h${m[1].length}`);
      renderInline(m[2], h);
      parent.appendChild(h);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      parent.appendChild(el('hr'));
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() && (m = QUOTE.exec(lines[i]) || [0, lines[i]])) {
        body.push(m[1]);
        i++;
      }
      const q = el('blockquote');
      renderBlocks(body, q);
      parent.appendChild(q);
      continue;
    }
    if (BULLET.test(line) || ORDERED.test(line)) {
      const ordered = !BULLET.test(line);
      const re = ordered ? ORDERED : BULLET;
      const list = el(ordered ? 'ol' : 'ul');
      if (ordered) list.start = Number(ORDERED.exec(line)[2]);
      const indent = re.exec(line)[1].length;
      let item = null;
      while (i < lines.length) {
        const l = lines[i];
        const im = re.exec(l);
        if (im && im[1].length <= indent + 1) {
          item = [im[3]];
          list.appendChild(el('li'))._lines = item;
          i++;
        } else if (l.trim() && item && /^\s+/.test(l)) {
          item.push(l.replace(new RegExp(`^\\s{0,${indent + 4}}`), ''));
          i++;
        } else if (l.trim() && item && !isBlockStart(l)) {
          item.push(l);  // a lazy continuation line
          i++;
        } else if (!l.trim() && i + 1 < lines.length && re.test(lines[i + 1])) {
          i++;
        } else {
          break;
        }
      }
      for (const li of list.children) {
        const sub = li._lines;
        delete li._lines;
        if (sub.length === 1) renderInline(sub[0], li);
        else renderTight(sub, li);
      }
      parent.appendChild(list);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
      const table = el('table');
      const head = el('tr');
      for (const c of splitRow(line)) renderInline(c, head.appendChild(el('th')));
      table.appendChild(el('thead')).appendChild(head);
      const body = table.appendChild(el('tbody'));
      i += 2;
      while (i < lines.length && lines[i].includes('|') && lines[i].trim()) {
        const tr = body.appendChild(el('tr'));
        for (const c of splitRow(lines[i])) renderInline(c, tr.appendChild(el('td')));
        i++;
      }
      parent.appendChild(table);
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !(para.length && isBlockStart(lines[i]))) {
      para.push(lines[i++]);
    }
    const p = el('p');
    renderInline(para.join('\n'), p);
    parent.appendChild(p);
  }
}

// A list item's lines: its first paragraph inline (no <p>), then any blocks.
function renderTight(lines, parent) {
  const wrap = document.createElement('div');
  renderBlocks(lines, wrap);
  if (wrap.firstChild && wrap.firstChild.tagName === 'P') {
    const first = wrap.firstChild;
    while (first.firstChild) parent.appendChild(first.firstChild);
    first.remove();
  }
  while (wrap.firstChild) parent.appendChild(wrap.firstChild);
}

/// Renders `text` into a new <div>.
export function renderMarkdown(text) {
  const root = document.createElement('div');
  renderBlocks(String(text).replace(/\r\n?/g, '\n').split('\n'), root);
  return root;
}
