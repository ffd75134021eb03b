/**
 * The outbound window of one session: QoS 1 and 2 messages sent to the client and not yet
 * acknowledged, in send order (a Map keeps insertion order, which is the order MQTT
 * requires for redelivery on resume [MQTT-4.4.0-1]).
 *
 *   queue (waiting, bounded) --pump--> inflight (<= window) --PUBACK/PUBCOMP--> done
 *                                         |  QoS 2: PUBREC moves the entry to 'pubrel'
 */
import type { AppMessage, QoS } from '../protocol/messages.js';

export interface InflightEntry {
  msg: AppMessage;
  qos: QoS;
  retain: boolean;
  subIds?: number[];
  /** Came from this shared subscription (`$share/...`): given back to the group if never acknowledged (shared-member.ts). */
  share?: string;
  /** 'publish': waiting for PUBACK/PUBREC; 'pubrel': PUBREL sent, waiting for PUBCOMP. */
  state: 'publish' | 'pubrel';
  /** Stored stream position and body (persistent sessions; journal.ts). */
  seq?: number;
  body?: number;
}

export class Inflight {
  /** Made on the first message sent: an idle session's window costs no Map. */
  private entries: Map<number, InflightEntry> | null = null;
  private nextId = 1;

  get size(): number {
    return this.entries === null ? 0 : this.entries.size;
  }

  /** Allocates a packet id not in use by this session (1..65535, never 0 [MQTT-2.3.1-1]). */
  add(entry: InflightEntry): number {
    const entries = (this.entries ??= new Map());
    if (entries.size >= 65535) throw new Error('no free packet identifier');
    let id = this.nextId;
    while (entries.has(id)) id = id === 65535 ? 1 : id + 1;
    this.nextId = id === 65535 ? 1 : id + 1;
    entries.set(id, entry);
    return id;
  }

  /** Puts back an entry read from the store, under the packet id it was sent with [MQTT-4.4.0-1]. */
  restore(id: number, entry: InflightEntry): void {
    (this.entries ??= new Map()).set(id, entry);
    this.nextId = id === 65535 ? 1 : id + 1;
  }

  get(id: number): InflightEntry | undefined {
    return this.entries === null ? undefined : this.entries.get(id);
  }

  delete(id: number): boolean {
    if (this.entries === null || !this.entries.delete(id)) return false;
    // Acknowledged all: the window goes back to costing nothing (packet ids go on from nextId).
    if (this.entries.size === 0) this.entries = null;
    return true;
  }

  entriesInOrder(): IterableIterator<[number, InflightEntry]> {
    return (this.entries ?? NO_ENTRIES).entries();
  }

  clear(): void {
    this.entries = null;
  }
}

const NO_ENTRIES: ReadonlyMap<number, InflightEntry> = new Map();
