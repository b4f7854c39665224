// Building DOM nodes from data without innerHTML: every text from the server is a text node.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * h('button', {class: 'btn', onclick: f, 'aria-label': '...'}, 'text', node, [more]) — an
 * element. Attributes whose value is false, null or undefined are left out; `on*` functions
 * become listeners; `dataset` is an object of data-* values.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An icon from the sprite in index.html; decorative (the word beside it says the same). */
export function icon(name, extraClass = '') {
  const svg = s('svg', { class: `icon ${extraClass}`.trim(), 'aria-hidden': 'true', focusable: 'false' });
  svg.append(s('use', { href: `#i-${name}` }));
  return svg;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Says a sentence to screen readers without moving focus. */
export function announce(text) {
  const el = document.getElementById('announcer');
  if (!el) return;
  el.textContent = '';
  // A fresh text node makes the live region speak even when the text repeats.
  requestAnimationFrame(() => { el.textContent = text; });
}
