import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  decodeImPayload,
  encodeImPayload,
  validateImPayload,
  ImPayloadError,
  IM_PAYLOAD_ERROR_CODES,
  type ImContent,
  type ImContentItem,
  type ImMessage,
  type ImPayloadErrorCode,
} from '../../../src/im/index.js';

interface ValidVector extends ImMessage { name: string; hex: string }
interface Vectors { valid: ValidVector[]; invalid: { name: string; hex: string }[] }

const vectors = JSON.parse(
  readFileSync(new URL('../../fixtures/im-payload-vectors.json', import.meta.url), 'utf8'),
) as Vectors;

/** The one expected code per invalid vector of the shared fixture. */
const EXPECTED: Record<string, ImPayloadErrorCode> = {
  'empty buffer': 'EMPTY',
  'sender length runs past the end': 'SENDER_OVERRUN',
  'truncated before TS ends': 'TRUNCATED_TS',
  'truncated before Con-len ends': 'TRUNCATED_CON_LEN',
  'Con-len larger than the rest': 'CONTENT_OVERRUN',
  'trailing bytes after Content': 'TRAILING_BYTES',
  'Content is not JSON': 'CONTENT_NOT_JSON',
  'Content has no con array': 'CON_MISSING',
  'con is not an array': 'CON_NOT_ARRAY',
  'media entry without ty': 'ITEM_TY_MISSING',
  'sender is not valid UTF-8': 'SENDER_NOT_UTF8',
};

/** Catches the error of `f`, failing the test when it does not throw an ImPayloadError. */
function refusal(f: () => unknown): ImPayloadError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ImPayloadError);
    return e as ImPayloadError;
  }
  throw new Error('expected an ImPayloadError, nothing was thrown');
}

/** Frames raw Content bytes behind a fixed valid header (sender "al", ts 1, type 0x00). */
function frame(content: string | Buffer, conLen?: number): Buffer {
  const c = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const head = Buffer.from([2, 0x61, 0x6c, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
  head.writeUInt32BE(conLen ?? c.length, 8);
  return Buffer.concat([head, c]);
}

const msg = (content: unknown): ImMessage =>
  ({ sender: 'al', ts: 1, kind: 0, media: 0, content }) as ImMessage;

describe('IM payload: shared vectors', () => {
  it.each(vectors.valid.map((v) => [v.name, v] as const))('valid: %s decodes and re-encodes exactly', (_n, v) => {
    const buf = Buffer.from(v.hex, 'hex');
    const m = decodeImPayload(buf);
    expect(m).toEqual({ sender: v.sender, ts: v.ts, kind: v.kind, media: v.media, content: v.content });
    expect(validateImPayload(buf)).toBeNull();
    expect(encodeImPayload(m).toString('hex')).toBe(v.hex);
    const fromFields = { sender: v.sender, ts: v.ts, kind: v.kind, media: v.media, content: v.content };
    expect(encodeImPayload(fromFields).toString('hex')).toBe(v.hex);
  });

  it('every invalid vector has an expected code in the table', () => {
    expect(vectors.invalid.map((v) => v.name).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(vectors.invalid.map((v) => [v.name, v.hex] as const))('invalid: %s is refused', (name, hex) => {
    const buf = Buffer.from(hex, 'hex');
    const err = refusal(() => decodeImPayload(buf));
    expect(err.code).toBe(EXPECTED[name]);
    expect(err.message.length).toBeGreaterThan(10);
    expect(validateImPayload(buf)?.code).toBe(EXPECTED[name]);
  });
});

describe('IM payload: decode edge cases', () => {
  const cases: [string, Buffer, ImPayloadErrorCode, number][] = [
    ['Sen-len only', Buffer.from([0]), 'TRUNCATED_TS', 1],
    ['no Type byte', Buffer.from([0, 0, 0, 0, 1]), 'TRUNCATED_TYPE', 5],
    ['Content bad UTF-8', frame(Buffer.from([0x7b, 0xc3, 0x28, 0x7d])), 'CONTENT_NOT_UTF8', 12],
    ['Content with BOM', frame(Buffer.from('\uFEFF{"con":[]}', 'utf8')), 'CONTENT_NOT_JSON', 12],
    ['empty Content', frame(''), 'CONTENT_NOT_JSON', 12],
    ['Content is an array', frame('[]'), 'CONTENT_NOT_OBJECT', 12],
    ['Content is null', frame('null'), 'CONTENT_NOT_OBJECT', 12],
    ['con is null', frame('{"con":null}'), 'CON_NOT_ARRAY', 12],
    ['item is a string', frame('{"con":["hi"]}'), 'ITEM_NOT_OBJECT', 12],
    ['item is null', frame('{"con":[{"ty":0,"co":""},null]}'), 'ITEM_NOT_OBJECT', 12],
    ['ty is a string', frame('{"con":[{"ty":"0","co":"x"}]}'), 'ITEM_TY_INVALID', 12],
    ['ty fractional', frame('{"con":[{"ty":1.5,"co":"x"}]}'), 'ITEM_TY_INVALID', 12],
    ['ty negative', frame('{"con":[{"ty":-1,"co":"x"}]}'), 'ITEM_TY_INVALID', 12],
    ['ty 256', frame('{"con":[{"ty":256,"co":"x"}]}'), 'ITEM_TY_INVALID', 12],
    ['co missing', frame('{"con":[{"ty":0}]}'), 'ITEM_CO_INVALID', 12],
    ['co is a number', frame('{"con":[{"ty":0,"co":5}]}'), 'ITEM_CO_INVALID', 12],
    ['fn is a string', frame('{"con":[{"ty":1,"co":"u","fn":"a.jpg"}]}'), 'ITEM_FN_INVALID', 12],
    ['fn is null', frame('{"con":[{"ty":1,"co":"u","fn":null}]}'), 'ITEM_FN_INVALID', 12],
    ['fn size is a number', frame('{"con":[{"ty":1,"co":"u","fn":{"name":"a","size":3}}]}'), 'ITEM_FN_INVALID', 12],
    ['fn without name', frame('{"con":[{"ty":1,"co":"u","fn":{"size":"3"}}]}'), 'ITEM_FN_INVALID', 12],
    ['Con-len overrun by one', frame('{"con":[]}', 11), 'CONTENT_OVERRUN', 8],
    ['one trailing byte', Buffer.concat([frame('{"con":[]}'), Buffer.from([0])]), 'TRAILING_BYTES', 22],
  ];
  it.each(cases)('%s', (_n, buf, code, offset) => {
    const err = refusal(() => decodeImPayload(buf));
    expect(err.code).toBe(code);
    expect(err.offset).toBe(offset);
  });

  it('names the JSON path of a bad item', () => {
    const err = refusal(() => decodeImPayload(frame('{"con":[{"ty":0,"co":"a"},{"ty":1,"co":"u","fn":{"name":"n"}}]}')));
    expect(err.path).toBe('con[1].fn.size');
    expect(err.message).toContain('con[1].fn.size');
  });

  it('keeps extra members, reserved kinds/media and a leading BOM in the sender', () => {
    const content = '{"con":[{"ty":14,"co":"","x":[1,{"y":null}],"fn":{"name":"n","size":"1","mime":"a/b"}}],"v":2}';
    const buf = frame(content);
    buf[0] = 3;
    const withBom = Buffer.concat([Buffer.from([3]), Buffer.from('\uFEFF', 'utf8'), buf.subarray(3)]);
    withBom[1 + 3 + 4] = 0xff; // kind 15, media 15 (both reserved, still legal on the wire)
    const m = decodeImPayload(withBom);
    expect(m.sender).toBe('\uFEFF');
    expect([m.kind, m.media]).toEqual([15, 15]);
    expect(m.content).toEqual(JSON.parse(content));
    expect(encodeImPayload(m).equals(withBom)).toBe(true);
  });

  it('decodes from a Uint8Array view at a non-zero offset', () => {
    const v = vectors.valid[0]!;
    const inner = Buffer.from(v.hex, 'hex');
    const backing = new Uint8Array(inner.length + 7);
    backing.set(inner, 3);
    const view = backing.subarray(3, 3 + inner.length);
    expect(decodeImPayload(view).sender).toBe(v.sender);
  });

  it('accepts any JSON spelling of Content (whitespace, escapes)', () => {
    const m = decodeImPayload(frame(' { "con" : [ { "co" : "\\u0068i" , "ty" : 0 } ] } '));
    expect(m.content.con[0]).toEqual({ ty: 0, co: 'hi' });
  });
});

describe('IM payload: encode refusals', () => {
  const good: ImContent = { con: [{ ty: 0, co: 'x' }] };
  const cases: [string, ImMessage, ImPayloadErrorCode][] = [
    ['sender of 256 bytes', { ...msg(good), sender: 'a'.repeat(256) }, 'SENDER_TOO_LONG'],
    ['sender of 86 three-byte chars', { ...msg(good), sender: '你'.repeat(86) }, 'SENDER_TOO_LONG'],
    ['sender with a lone surrogate', { ...msg(good), sender: 'a\uD800' }, 'SENDER_NOT_UTF8'],
    ['negative ts', { ...msg(good), ts: -1 }, 'TS_INVALID'],
    ['ts 2^32', { ...msg(good), ts: 2 ** 32 }, 'TS_INVALID'],
    ['fractional ts', { ...msg(good), ts: 1.5 }, 'TS_INVALID'],
    ['NaN ts', { ...msg(good), ts: NaN }, 'TS_INVALID'],
    ['kind 16', { ...msg(good), kind: 16 }, 'KIND_INVALID'],
    ['kind -1', { ...msg(good), kind: -1 }, 'KIND_INVALID'],
    ['media 16', { ...msg(good), media: 16 }, 'MEDIA_INVALID'],
    ['content without con', msg({}), 'CON_MISSING'],
    ['content is an array', msg([]), 'CONTENT_NOT_OBJECT'],
    ['content undefined', msg(undefined), 'CONTENT_NOT_JSON'],
    ['content with a BigInt', msg({ con: [], n: 1n }), 'CONTENT_NOT_JSON'],
    ['ty NaN (written as null)', msg({ con: [{ ty: NaN, co: '' }] }), 'ITEM_TY_INVALID'],
    ['co undefined', msg({ con: [{ ty: 0, co: undefined }] }), 'ITEM_CO_INVALID'],
    ['fn size missing', msg({ con: [{ ty: 0, co: '', fn: { name: 'a' } }] }), 'ITEM_FN_INVALID'],
  ];
  it.each(cases)('%s', (_n, m, code) => {
    expect(refusal(() => encodeImPayload(m)).code).toBe(code);
  });

  it('accepts the limits: 255-byte sender, ts 0 and 2^32-1, kind/media 15, ty 255', () => {
    for (const m of [
      { ...msg({ con: [{ ty: 255, co: '' }] }), sender: 'é'.repeat(127) + 'a', ts: 2 ** 32 - 1, kind: 15, media: 15 },
      { ...msg({ con: [] }), ts: 0 },
    ]) {
      expect(decodeImPayload(encodeImPayload(m))).toEqual(m);
    }
  });

  it('lists every code once', () => {
    expect(new Set(IM_PAYLOAD_ERROR_CODES).size).toBe(IM_PAYLOAD_ERROR_CODES.length);
  });
});

// ---- properties -----------------------------------------------------------------------

/** Unicode strings including astral characters; never lone surrogates (no UTF-8 form). */
const text = (maxLength: number) => fc.string({ unit: 'grapheme', maxLength });

/** Senders up to the full 255 bytes: long multi-byte strings are trimmed by whole code points. */
const sender = text(120).map((s) => {
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch, 'utf8') > 255) break;
    out += ch;
  }
  return out;
});

// Extra members: keys must not collide with the known ones, values are plain JSON without
// -0 (JSON writes it as 0, so it cannot round-trip).
const extraKey = fc.string({ maxLength: 6 }).filter((k) => !['ty', 'co', 'fn', 'con'].includes(k));
const jsonValue = fc.jsonValue({ maxDepth: 2, noUnicodeString: false }).map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const extras = fc.dictionary(extraKey, jsonValue, { maxKeys: 2 });

const item: fc.Arbitrary<ImContentItem> = fc
  .record(
    {
      ty: fc.integer({ min: 0, max: 255 }),
      co: text(40),
      fn: fc.record({ name: text(20), size: fc.oneof(fc.nat().map(String), text(5)) }),
    },
    { requiredKeys: ['ty', 'co'] },
  )
  .chain((it) => extras.map((x) => ({ ...x, ...it })));

const content: fc.Arbitrary<ImContent> = fc
  .tuple(fc.array(item, { maxLength: 4 }), extras)
  .map(([con, x]) => ({ ...x, con }));

const message: fc.Arbitrary<ImMessage> = fc.record({
  sender,
  ts: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  kind: fc.integer({ min: 0, max: 15 }),
  media: fc.integer({ min: 0, max: 15 }),
  content,
});

/** Decoding must either succeed or throw an ImPayloadError with a known code. */
function decodeOrRefuse(buf: Uint8Array): void {
  let err: unknown = null;
  try {
    decodeImPayload(buf);
  } catch (e) {
    err = e;
  }
  if (err !== null) {
    expect(err).toBeInstanceOf(ImPayloadError);
    expect(IM_PAYLOAD_ERROR_CODES).toContain((err as ImPayloadError).code);
  }
  expect(validateImPayload(buf)?.code).toBe(err === null ? undefined : (err as ImPayloadError).code);
}

describe('IM payload: properties', () => {
  it('decode(encode(m)) deep-equals m', () => {
    fc.assert(
      fc.property(message, (m) => {
        const buf = encodeImPayload(m);
        expect(decodeImPayload(buf)).toEqual(m);
        expect(buf[0]).toBe(Buffer.byteLength(m.sender, 'utf8'));
      }),
      { numRuns: 500 },
    );
  });

  it('encode is canonical: encode(decode(b)) === b for any encoded b', () => {
    fc.assert(
      fc.property(message, (m) => {
        const buf = encodeImPayload(m);
        expect(encodeImPayload(decodeImPayload(buf)).equals(buf)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('random bytes never throw anything but ImPayloadError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), decodeOrRefuse), { numRuns: 2000 });
  });

  it('mutated and truncated valid encodings never throw anything but ImPayloadError', () => {
    const mutation = fc.record({
      cut: fc.nat(),
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      tail: fc.uint8Array({ maxLength: 3 }),
    });
    fc.assert(
      fc.property(message, mutation, (m, { cut, flips, tail }) => {
        const buf = Buffer.from(encodeImPayload(m));
        for (const [at, b] of flips) buf[at % buf.length] = b;
        decodeOrRefuse(buf);
        decodeOrRefuse(buf.subarray(0, cut % (buf.length + 1)));
        decodeOrRefuse(Buffer.concat([buf, tail]));
      }),
      { numRuns: 1000 },
    );
  });

  it('any strict prefix of a valid encoding is refused', () => {
    fc.assert(
      fc.property(message, fc.nat(), (m, cut) => {
        const buf = encodeImPayload(m);
        expect(validateImPayload(buf.subarray(0, cut % buf.length))).toBeInstanceOf(ImPayloadError);
      }),
      { numRuns: 300 },
    );
  });
});
