// Minimal typings for the parts of @xmpp/client (which ships no types) that fig6 uses.
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';

  export interface Element {
    name: string;
    attrs: Record<string, string | undefined>;
    is(name: string, xmlns?: string): boolean;
    getChildText(name: string): string | null;
    toString(): string;
  }
  export function xml(name: string, attrs?: Record<string, string>, ...children: Array<Element | string>): Element;
  export interface XmppClient extends EventEmitter {
    socket?: Socket;
    status: string;
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    send(el: Element): Promise<void>;
    streamManagement: { enabled: boolean; requestAckDebounce: number; requestAckInterval: number; timeout: number };
  }
  export function client(options: {
    service: string;
    domain: string;
    resource?: string;
    username?: string;
    password?: string;
    timeout?: number;
  }): XmppClient;
}
