/** One message in a conversation: its items (text, picture, audio, video, file), time and delivery state. */
import { ImItemType, type ImContentItem } from '../../../src/im/index.js';
import { formatTime } from '../format.js';
import { brokerFilePath, externalLink, formatSize, sizeOf } from '../media.js';
import type { ChatMessage, Upload } from '../state.js';
import { h, setText } from './dom.js';

/** What message elements need from the app. */
export interface MessageContext {
  setMediaSource(el: HTMLImageElement | HTMLMediaElement, path: string): void;
  download(path: string, name: string): void;
  showImage(path: string, alt: string): void;
}

function fileName(item: ImContentItem): string {
  if (typeof item.fn?.name === 'string' && item.fn.name !== '') return item.fn.name;
  const path = brokerFilePath(item.co);
  return path ? decodeURIComponent(path.slice(path.lastIndexOf('/') + 1)) : item.co;
}

function caption(item: ImContentItem): HTMLElement {
  const size = sizeOf(item.fn?.size);
  return h('div', { class: 'caption' }, h('span', { class: 'file-name' }, fileName(item)), Number.isNaN(size) ? null : h('span', { class: 'file-size' }, formatSize(size)));
}

/** A link that is not a file of this broker: shown, never loaded inline (no tracking pixels, no credentials). */
function linkOnly(item: ImContentItem): HTMLElement {
  const href = externalLink(item.co);
  const text = fileName(item);
  return href ? h('a', { class: 'link', href, target: '_blank', rel: 'noopener noreferrer' }, text) : h('p', { class: 'text' }, item.co);
}

function itemElement(item: ImContentItem, ctx: MessageContext): HTMLElement {
  if (item.ty === ImItemType.TEXT || item.ty === ImItemType.HTML || item.ty === ImItemType.LOCATION || item.ty === ImItemType.RICH) {
    // HTML and rich media are shown as their text: markup from a message never runs here.
    return h('p', { class: 'text' }, item.co);
  }
  const path = brokerFilePath(item.co);
  if (path === null) return linkOnly(item);
  switch (item.ty) {
    case ImItemType.IMAGE: {
      const thumb = typeof item['th'] === 'string' ? brokerFilePath(item['th']) : null;
      const img = h('img', { alt: fileName(item), loading: 'lazy', decoding: 'async' });
      ctx.setMediaSource(img, thumb ?? path);
      return h('button', { type: 'button', class: 'image', title: 'Open the picture', onclick: () => ctx.showImage(path, fileName(item)) }, img);
    }
    case ImItemType.AUDIO: {
      const audio = h('audio', { controls: true, preload: 'metadata' });
      ctx.setMediaSource(audio, path);
      return h('div', { class: 'media audio' }, audio, caption(item));
    }
    case ImItemType.VIDEO: {
      const video = h('video', { controls: true, preload: 'metadata', playsinline: true });
      ctx.setMediaSource(video, path);
      return h('div', { class: 'media video' }, video, caption(item));
    }
    default:
      return h(
        'button',
        { type: 'button', class: 'file', title: 'Download', onclick: () => ctx.download(path, fileName(item)) },
        h('span', { class: 'file-icon', 'aria-hidden': 'true' }),
        caption(item),
      );
  }
}

const STATUS_TEXT: Record<ChatMessage['status'], string> = { sending: 'sending…', sent: '✓', failed: 'not sent', received: '' };

export function messageElement(m: ChatMessage, showSender: boolean, ctx: MessageContext, now: number): HTMLElement {
  return h(
    'li',
    { class: `msg ${m.mine ? 'mine' : 'theirs'}`, 'data-id': m.id },
    h(
      'div',
      { class: 'bubble' },
      showSender && !m.mine ? h('div', { class: 'sender' }, m.sender || '(no sender)') : null,
      ...m.items.map((i) => itemElement(i, ctx)),
      h('div', { class: 'meta' }, h('time', { datetime: new Date(m.ts * 1000).toISOString() }, formatTime(m.ts, now)), h('span', { class: 'status' })),
    ),
  );
}

/** What can change after a message is shown: its delivery state. */
export function updateMessage(el: HTMLElement, m: ChatMessage): void {
  el.dataset['status'] = m.status;
  const status = el.querySelector('.status');
  if (status) {
    setText(status, m.status === 'failed' && m.error ? `not sent: ${m.error}` : STATUS_TEXT[m.status]);
  }
}

export function uploadElement(u: Upload, ctx: { dismissUpload(id: string): void }): HTMLElement {
  return h(
    'li',
    // Only a failed one reacts: a click dismisses its notice.
    { class: 'upload mine', title: '', onclick: (e: Event) => (e.currentTarget as HTMLElement).classList.contains('failed') && ctx.dismissUpload(u.id) },
    h('div', { class: 'bubble' }, h('div', { class: 'caption' }, h('span', { class: 'file-name' }, u.name), h('span', { class: 'file-size' }, formatSize(u.size))), h('progress', { max: Math.max(u.size, 1), value: 0 }), h('div', { class: 'upload-state' })),
  );
}

export function updateUpload(el: HTMLElement, u: Upload): void {
  const bar = el.querySelector('progress');
  if (bar) bar.value = Math.min(u.loaded, bar.max);
  const pct = u.size > 0 ? Math.floor((100 * u.loaded) / u.size) : 100;
  el.dataset['progress'] = String(pct);
  const state = el.querySelector('.upload-state');
  if (state) setText(state, u.error ? `upload failed: ${u.error}` : `uploading… ${pct}%`);
  el.classList.toggle('failed', u.error !== undefined);
  el.title = u.error ? 'Click to dismiss' : '';
}
