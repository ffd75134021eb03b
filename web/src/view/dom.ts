/**
 * A few DOM helpers instead of a framework: `h` builds elements (text always as text
 * nodes, never parsed as HTML, so message content cannot inject markup), and `syncList`
 * keeps a container's children matched to a keyed list, reusing elements, so that an
 * <audio> or <video> already playing is not rebuilt when a message arrives.
 */

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

/** Sets a text if it changed (no layout work for the common no-op). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

const KEY = 'key';

/**
 * Makes `parent`'s children the elements for `items`, in order: existing ones (by key)
 * are kept and updated, new ones created, the rest removed.
 */
export function syncList<T>(
  parent: HTMLElement,
  items: readonly T[],
  key: (item: T) => string,
  create: (item: T) => HTMLElement,
  update?: (el: HTMLElement, item: T) => void,
): void {
  const existing = new Map<string, HTMLElement>();
  for (const child of Array.from(parent.children)) {
    const k = (child as HTMLElement).dataset[KEY];
    if (k !== undefined) existing.set(k, child as HTMLElement);
    else child.remove();
  }
  let at: Element | null = parent.firstElementChild;
  for (const item of items) {
    const k = key(item);
    let el = existing.get(k);
    if (el) existing.delete(k);
    else {
      el = create(item);
      el.dataset[KEY] = k;
    }
    update?.(el, item);
    if (el !== at) parent.insertBefore(el, at);
    else at = at.nextElementSibling;
  }
  for (const el of existing.values()) el.remove();
}
