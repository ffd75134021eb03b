/**
 * Splits a byte stream into MQTT packets before they are parsed.
 *
 * Why our own framing in front of mqtt-packet: its parser buffers a packet of any
 * declared Remaining Length (up to 256 MB) before complaining. Reading the fixed header
 * here lets the broker refuse an oversized packet as soon as its length is known
 * (v5: DISCONNECT 0x95 Packet too large [MQTT-3.2.2-15 analogue for the server]) and a
 * Remaining Length longer than 4 bytes as malformed [MQTT-1.5.5-1], without buffering.
 */
export type FrameError = 'too_large' | 'bad_length';

/**
 * Where a stream's partial packet waits between chunks: a Framer, or the gateway's
 * connection record itself (no framer object per connection).
 */
export interface FrameState {
  pending: Buffer | null;
}

/**
 * Calls onFrame for every complete packet of `chunk` (after what `state` kept of the
 * previous chunks); returns an error instead of continuing.
 */
export function pushFrames(state: FrameState, maxPacketSize: number, chunk: Buffer, onFrame: (frame: Buffer) => void): FrameError | null {
  const buf = state.pending ? Buffer.concat([state.pending, chunk]) : chunk;
  state.pending = null;
  let pos = 0;
  while (pos < buf.length) {
    // Fixed header: 1 type byte + 1..4 bytes of Remaining Length.
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let complete = false;
    for (let n = 0; n < 4; n++, i++) {
      if (i >= buf.length) break;
      const b = buf[i]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        complete = true;
        i++;
        break;
      }
      if (n === 3) return 'bad_length';
    }
    if (!complete) break; // header not complete yet
    const total = i - pos + len;
    if (total > maxPacketSize) return 'too_large';
    if (pos + total > buf.length) break;
    onFrame(buf.subarray(pos, pos + total));
    pos += total;
  }
  if (pos < buf.length) {
    state.pending = pos === 0 ? buf : Buffer.from(buf.subarray(pos));
    if (state.pending.length > maxPacketSize + 5) return 'too_large';
  }
  return null;
}

export class Framer implements FrameState {
  pending: Buffer | null = null;
  private readonly maxPacketSize: number;

  constructor(maxPacketSize: number) {
    this.maxPacketSize = maxPacketSize;
  }

  /** Calls onFrame for every complete packet; returns an error instead of continuing. */
  push(chunk: Buffer, onFrame: (frame: Buffer) => void): FrameError | null {
    return pushFrames(this, this.maxPacketSize, chunk, onFrame);
  }
}
