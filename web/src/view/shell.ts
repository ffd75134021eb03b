/**
 * The logged-in screen: the conversation list (groups and people, presence, unread
 * counts) beside the open conversation. On a phone-sized screen one of the two is shown
 * at a time (styles.css, `data-view`).
 */
import { convParts, listEntries, totalUnread, type ChatMessage, type ConvId, type ListEntry, type State, type Upload } from '../state.js';
import { h, setText, syncList } from './dom.js';
import { messageElement, updateMessage, updateUpload, uploadElement, type MessageContext } from './message.js';

export interface ShellContext extends MessageContext {
  open(conv: ConvId | null): void;
  sendText(conv: ConvId, text: string): void;
  sendFiles(conv: ConvId, files: File[]): void;
  /** A failed upload's notice goes away. */
  dismissUpload(id: string): void;
  logout(): void;
}

const CONNECTION_TEXT: Record<State['connection'], string> = {
  connecting: 'connecting…',
  online: 'online',
  offline: 'offline, reconnecting…',
  replaced: 'this device name is in use elsewhere',
};

/** A stable colour per name, for the initials. */
function hue(name: string): number {
  let x = 0;
  for (let i = 0; i < name.length; i++) x = (x * 31 + name.charCodeAt(i)) >>> 0;
  return x % 360;
}

function avatar(name: string, group: boolean): HTMLElement {
  const el = h('span', { class: 'avatar', 'aria-hidden': 'true' }, group ? '#' : (name[0] ?? '?').toUpperCase(), h('span', { class: 'dot' }));
  el.style.setProperty('--hue', String(hue(name)));
  return el;
}

function title(kind: 'user' | 'group', peer: string, me: string): string {
  if (kind === 'group') return `#${peer}`;
  return peer === me ? `${peer} (you, other devices)` : peer;
}

export class Shell {
  readonly el: HTMLElement;
  private readonly list = h('ul', { class: 'convs' });
  private readonly status = h('div', { class: 'status' });
  private readonly messages = h('ol', { class: 'messages' });
  private readonly chatTitle = h('h2', {});
  private readonly chatSubtitle = h('div', { class: 'subtitle' });
  private readonly text = h('input', { name: 'text', autocomplete: 'off', placeholder: 'Message', enterkeyhint: 'send' });
  private readonly fileInput = h('input', { type: 'file', name: 'files', multiple: true });
  private readonly chat: HTMLElement;
  private shownConv: ConvId | null = null;
  private atEnd = true;
  private state: State;

  constructor(state: State, private readonly ctx: ShellContext) {
    this.state = state;
    const me = state.me.uid;
    const sidebar = h(
      'aside',
      { class: 'sidebar' },
      h('header', { class: 'me' }, avatar(me, false), h('div', { class: 'me-text' }, h('div', { class: 'name' }, me), this.status), h('button', { type: 'button', class: 'logout', onclick: () => ctx.logout() }, 'Log out')),
      this.list,
    );
    this.fileInput.addEventListener('change', () => {
      const files = Array.from(this.fileInput.files ?? []);
      this.fileInput.value = '';
      if (files.length > 0 && this.state.active) ctx.sendFiles(this.state.active, files);
    });
    const composer = h(
      'form',
      { class: 'composer' },
      h('label', { class: 'attach', title: 'Send pictures, audio, video or files' }, this.fileInput, h('span', { class: 'visually-hidden' }, 'Attach')),
      this.text,
      h('button', { type: 'submit', class: 'send' }, 'Send'),
    );
    composer.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = this.text.value.trim();
      if (text === '' || !this.state.active) return;
      this.text.value = '';
      ctx.sendText(this.state.active, text);
    });
    this.chat = h(
      'section',
      { class: 'chat' },
      h('header', { class: 'chat-head' }, h('button', { type: 'button', class: 'back', title: 'Conversations', onclick: () => ctx.open(null) }, '‹'), h('div', {}, this.chatTitle, this.chatSubtitle)),
      this.messages,
      composer,
      h('div', { class: 'empty' }, 'Pick a conversation'),
    );
    this.el = h('div', { class: 'shell' }, sidebar, this.chat);
    // Pictures and players get their height when they load: a chat scrolled to the end
    // stays at the end. (load events do not bubble; capturing sees them.)
    this.messages.addEventListener('scroll', () => (this.atEnd = this.isNearEnd()));
    for (const type of ['load', 'loadedmetadata']) {
      this.messages.addEventListener(type, () => this.atEnd && this.scrollToEnd(), true);
    }
    this.render(state);
  }

  render(s: State): void {
    this.state = s;
    const el = this.el;
    el.dataset['connection'] = s.connection;
    el.dataset['view'] = s.active ? 'chat' : 'list';
    el.dataset['active'] = s.active ?? '';
    setText(this.status, CONNECTION_TEXT[s.connection]);
    const n = totalUnread(s);
    document.title = n > 0 ? `(${n}) Switchboard` : 'Switchboard';
    this.renderList(s);
    this.renderChat(s);
  }

  private renderList(s: State): void {
    syncList(
      this.list,
      listEntries(s),
      (e) => e.conv,
      (e) =>
        h(
          'li',
          { class: `conv ${e.kind}`, 'data-conv': e.conv, tabindex: 0, role: 'button', onclick: () => this.ctx.open(e.conv), onkeydown: (ev: Event) => (ev as KeyboardEvent).key === 'Enter' && this.ctx.open(e.conv) },
          avatar(e.peer, e.kind === 'group'),
          h('div', { class: 'conv-text' }, h('div', { class: 'conv-name' }, title(e.kind, e.peer, s.me.uid)), h('div', { class: 'conv-preview' })),
          h('span', { class: 'unread' }),
        ),
      (li, e: ListEntry) => {
        li.classList.toggle('online', e.online);
        li.classList.toggle('active', s.active === e.conv);
        li.dataset['unread'] = String(e.unread);
        setText(li.querySelector('.conv-preview')!, e.preview);
        setText(li.querySelector('.unread')!, e.unread > 0 ? String(e.unread) : '');
      },
    );
  }

  private renderChat(s: State): void {
    const conv = s.active ? s.conversations[s.active] : undefined;
    if (s.active !== this.shownConv) {
      // Another conversation: its own elements (and media players).
      this.messages.replaceChildren();
      this.shownConv = s.active;
      // Ready to type with a keyboard; on a touch screen that would pop the keyboard up over the chat.
      if (s.active && matchMedia('(pointer: fine)').matches) queueMicrotask(() => this.text.focus({ preventScroll: true }));
    }
    if (!s.active) return;
    const { kind, peer } = convParts(s.active);
    setText(this.chatTitle, title(kind, peer, s.me.uid));
    const contact = s.contacts[peer];
    setText(
      this.chatSubtitle,
      kind === 'group' ? 'group' : contact?.online ? `online${contact.devices > 1 ? ` on ${contact.devices} devices` : ''}` : 'offline',
    );
    const nearBottom = this.isNearEnd();
    const before = this.messages.childElementCount;
    const now = Date.now();
    type Row = { key: string; msg?: ChatMessage; upload?: Upload };
    const rows: Row[] = [
      ...(conv?.messages ?? []).map((m) => ({ key: `m:${m.id}`, msg: m })),
      ...s.uploads.filter((u) => u.conv === s.active).map((u) => ({ key: `u:${u.id}`, upload: u })),
    ];
    syncList(
      this.messages,
      rows,
      (r) => r.key,
      (r) => (r.msg ? messageElement(r.msg, kind === 'group', this.ctx, now) : uploadElement(r.upload!, this.ctx)),
      (el, r) => (r.msg ? updateMessage(el, r.msg) : updateUpload(el, r.upload!)),
    );
    if (this.messages.childElementCount !== before && (nearBottom || before === 0)) this.scrollToEnd();
  }

  private isNearEnd(): boolean {
    const m = this.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  private scrollToEnd(): void {
    this.messages.scrollTop = this.messages.scrollHeight;
    this.atEnd = true;
  }
}

/** The full-size picture over everything; a click or Escape closes it. */
export function lightbox(img: HTMLImageElement): HTMLElement {
  const box = h('div', { class: 'lightbox', role: 'dialog', 'aria-label': img.alt }, img);
  const close = (): void => {
    box.remove();
    document.removeEventListener('keydown', onKey);
  };
  const onKey = (e: KeyboardEvent): void => {
    if (e.key === 'Escape') close();
  };
  box.addEventListener('click', close);
  document.addEventListener('keydown', onKey);
  return box;
}
