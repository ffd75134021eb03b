/**
 * The binary IM payload of IM-PROTOCOL.md section 3 (paper 3.2, tables 3 and 4):
 *
 *   Sen-len u8 | Sender (UTF-8) | TS u32 BE | Type u8 (kind<<4 | media) | Con-len u32 BE | Content (UTF-8 JSON)
 *
 * The broker runs `validateImPayload` on every publish to an IM topic, so the decoder must
 * never throw anything but ImPayloadError (a stray TypeError there would take down the
 * publish path instead of producing a 0x99 "Payload format invalid" reason). Clients use
 * the same module through src/im/index.ts, so encode and decode accept exactly the same
 * shape: anything `encodeImPayload` returns decodes again.
 */

/** Message kind (high nibble). Values 3..15 are reserved but legal on the wire. */
export type ImKind = number;
export const ImKind = { P2P: 0, PC_TO_PHONE: 1, PHONE_TO_PC: 2 } as const;

/** Content (media) type of the message (low nibble). Values 6..15 are reserved but legal. */
export type ImMedia = number;
export const ImMedia = { TEXT: 0, IMAGE: 1, AUDIO: 2, VIDEO: 3, PDF: 4, WORD: 5 } as const;

/** `ty` of a content item (0..255); numbers from IM-PROTOCOL.md section 3. */
export const ImItemType = {
  TEXT: 0, IMAGE: 1, AUDIO: 2, VIDEO: 3, DOCUMENT: 4, FILE: 5, LOCATION: 6, HTML: 7, RICH: 14,
} as const;

/** File description; `size` is a string because the paper writes it so. */
export interface ImFileInfo {
  name: string;
  size: string;
  [extra: string]: unknown;
}

/** One medium of a message. Unknown members are kept so newer clients can extend items. */
export interface ImContentItem {
  ty: number;
  co: string;
  fn?: ImFileInfo;
  [extra: string]: unknown;
}

export interface ImContent {
  con: ImContentItem[];
  [extra: string]: unknown;
}

export interface ImMessage {
  sender: string;
  ts: number;
  kind: ImKind;
  media: ImMedia;
  content: ImContent;
}

/** Closed set of refusal reasons; the broker counts refusals per code. */
export const IM_PAYLOAD_ERROR_CODES = [
  // framing (decode)
  'EMPTY', 'SENDER_OVERRUN', 'SENDER_NOT_UTF8', 'TRUNCATED_TS', 'TRUNCATED_TYPE',
  'TRUNCATED_CON_LEN', 'CONTENT_OVERRUN', 'TRAILING_BYTES',
  // Content JSON (decode and encode)
  'CONTENT_NOT_UTF8', 'CONTENT_NOT_JSON', 'CONTENT_NOT_OBJECT', 'CON_MISSING', 'CON_NOT_ARRAY',
  'ITEM_NOT_OBJECT', 'ITEM_TY_MISSING', 'ITEM_TY_INVALID', 'ITEM_CO_INVALID', 'ITEM_FN_INVALID',
  // header fields (encode only: on the wire every byte value is legal)
  'SENDER_TOO_LONG', 'TS_INVALID', 'KIND_INVALID', 'MEDIA_INVALID', 'CONTENT_TOO_LONG',
] as const;
export type ImPayloadErrorCode = (typeof IM_PAYLOAD_ERROR_CODES)[number];

export class ImPayloadError extends Error {
  override readonly name = 'ImPayloadError';
  /**
   * Byte offset in the payload where the faulty field starts (decode only). For errors
   * inside the Content JSON it is the offset of Content; `path` then says where inside.
   */
  readonly offset: number | undefined;
  /** JSON path inside Content, e.g. `con[1].fn`, for the Content shape errors. */
  readonly path: string | undefined;

  constructor(readonly code: ImPayloadErrorCode, message: string, offset?: number, path?: string) {
    super(message);
    this.offset = offset;
    this.path = path;
  }
}

const SEN_LEN_SIZE = 1;
const TS_SIZE = 4;
const TYPE_SIZE = 1;
const CON_LEN_SIZE = 4;
const MAX_SENDER_BYTES = 0xff;
const MAX_U32 = 0xffff_ffff;

// fatal: a payload with broken UTF-8 is refused rather than silently patched with U+FFFD.
// ignoreBOM: a leading U+FEFF is data (a sender may begin with it); stripping it would
// break the encode/decode round trip. For Content a BOM then makes the JSON invalid,
// which is the strict reading of "UTF-8 JSON".
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// A lone surrogate cannot be written as UTF-8 (Buffer.from would replace it with U+FFFD and
// the receiver would see a different sender), so the encoder refuses it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return 'a string';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

/**
 * Checks the parsed Content against the shape of section 3. Returns the error instead of
 * throwing so that the hot path can use it without try/catch.
 */
function checkContent(c: unknown, offset: number | undefined): ImPayloadError | null {
  const fail = (code: ImPayloadErrorCode, path: string, msg: string): ImPayloadError =>
    new ImPayloadError(code, `Content ${path}: ${msg}`, offset, path);
  if (!isPlainObject(c)) return fail('CONTENT_NOT_OBJECT', '$', `must be a JSON object, got ${describe(c)}`);
  if (!Object.hasOwn(c, 'con')) return fail('CON_MISSING', 'con', 'member is missing');
  const con = c['con'];
  if (!Array.isArray(con)) return fail('CON_NOT_ARRAY', 'con', `must be an array, got ${describe(con)}`);
  for (let i = 0; i < con.length; i++) {
    const item: unknown = con[i];
    const at = `con[${i}]`;
    if (!isPlainObject(item)) return fail('ITEM_NOT_OBJECT', at, `must be an object, got ${describe(item)}`);
    if (!Object.hasOwn(item, 'ty')) return fail('ITEM_TY_MISSING', `${at}.ty`, 'member is missing');
    const ty = item['ty'];
    if (typeof ty !== 'number' || !Number.isInteger(ty) || ty < 0 || ty > 255) {
      return fail('ITEM_TY_INVALID', `${at}.ty`, `must be an integer 0..255, got ${describe(ty)}`);
    }
    const co = item['co'];
    if (typeof co !== 'string') {
      const got = Object.hasOwn(item, 'co') ? describe(co) : 'nothing';
      return fail('ITEM_CO_INVALID', `${at}.co`, `must be a string, got ${got}`);
    }
    if (Object.hasOwn(item, 'fn')) {
      const fn = item['fn'];
      if (!isPlainObject(fn)) return fail('ITEM_FN_INVALID', `${at}.fn`, `must be an object, got ${describe(fn)}`);
      if (typeof fn['name'] !== 'string') {
        return fail('ITEM_FN_INVALID', `${at}.fn.name`, `must be a string, got ${describe(fn['name'])}`);
      }
      if (typeof fn['size'] !== 'string') {
        return fail('ITEM_FN_INVALID', `${at}.fn.size`, `must be a string, got ${describe(fn['size'])}`);
      }
    }
  }
  return null;
}

/** Decodes a payload, or returns why it is invalid. Never throws (the broker's hot path). */
function parse(buf: Uint8Array): ImMessage | ImPayloadError {
  const len = buf.length;
  if (len === 0) return new ImPayloadError('EMPTY', 'payload is empty: Sen-len (1 byte) is missing', 0);

  const senLen = buf[0]!;
  const senStart = SEN_LEN_SIZE;
  const senEnd = senStart + senLen;
  if (senEnd > len) {
    return new ImPayloadError(
      'SENDER_OVERRUN',
      `Sen-len ${senLen} runs past the end: only ${len - senStart} byte(s) follow at offset ${senStart}`,
      0,
    );
  }
  let sender: string;
  try {
    sender = utf8.decode(buf.subarray(senStart, senEnd));
  } catch {
    return new ImPayloadError('SENDER_NOT_UTF8', `Sender (${senLen} bytes at offset ${senStart}) is not valid UTF-8`, senStart);
  }

  // DataView rather than Buffer.readUInt32BE: the input may be any Uint8Array view.
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tsAt = senEnd;
  if (tsAt + TS_SIZE > len) {
    return new ImPayloadError('TRUNCATED_TS', `TS needs 4 bytes at offset ${tsAt}, only ${len - tsAt} remain`, tsAt);
  }
  const ts = view.getUint32(tsAt, false);

  const typeAt = tsAt + TS_SIZE;
  if (typeAt + TYPE_SIZE > len) {
    return new ImPayloadError('TRUNCATED_TYPE', `Type byte missing at offset ${typeAt}`, typeAt);
  }
  const type = buf[typeAt]!;

  const conLenAt = typeAt + TYPE_SIZE;
  if (conLenAt + CON_LEN_SIZE > len) {
    return new ImPayloadError(
      'TRUNCATED_CON_LEN',
      `Con-len needs 4 bytes at offset ${conLenAt}, only ${len - conLenAt} remain`,
      conLenAt,
    );
  }
  const conLen = view.getUint32(conLenAt, false);

  const conAt = conLenAt + CON_LEN_SIZE;
  const rest = len - conAt;
  if (conLen > rest) {
    return new ImPayloadError(
      'CONTENT_OVERRUN',
      `Con-len ${conLen} runs past the end: only ${rest} byte(s) follow at offset ${conAt}`,
      conLenAt,
    );
  }
  if (conLen < rest) {
    // Extra bytes are refused rather than ignored: they could smuggle data past clients
    // that trust Con-len while others read to the end of the PUBLISH.
    return new ImPayloadError(
      'TRAILING_BYTES',
      `${rest - conLen} byte(s) after Content (Con-len ${conLen}) at offset ${conAt + conLen}`,
      conAt + conLen,
    );
  }

  let text: string;
  try {
    text = utf8.decode(buf.subarray(conAt, conAt + conLen));
  } catch {
    return new ImPayloadError('CONTENT_NOT_UTF8', `Content (${conLen} bytes at offset ${conAt}) is not valid UTF-8`, conAt);
  }
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return new ImPayloadError('CONTENT_NOT_JSON', `Content at offset ${conAt} is not JSON: ${why}`, conAt);
  }
  const bad = checkContent(content, conAt);
  if (bad) return bad;

  return { sender, ts, kind: type >> 4, media: type & 0x0f, content: content as ImContent };
}

/** Decodes an IM payload. Throws only ImPayloadError. */
export function decodeImPayload(buf: Uint8Array): ImMessage {
  const r = parse(buf);
  if (r instanceof ImPayloadError) throw r;
  return r;
}

/** The refusal reason for an invalid payload, or null when it is valid. Never throws. */
export function validateImPayload(buf: Uint8Array): ImPayloadError | null {
  const r = parse(buf);
  return r instanceof ImPayloadError ? r : null;
}

function checkNibble(v: unknown, code: 'KIND_INVALID' | 'MEDIA_INVALID', field: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 15) {
    throw new ImPayloadError(code, `${field} must be an integer 0..15, got ${describe(v)}`);
  }
}

/**
 * Encodes a message; Content is written as compact JSON (JSON.stringify). Throws
 * ImPayloadError when the message cannot be represented or would not decode again.
 */
export function encodeImPayload(m: ImMessage): Buffer {
  if (typeof m.sender !== 'string') {
    throw new ImPayloadError('SENDER_NOT_UTF8', `sender must be a string, got ${describe(m.sender)}`);
  }
  if (LONE_SURROGATE.test(m.sender)) {
    throw new ImPayloadError('SENDER_NOT_UTF8', 'sender contains a lone surrogate, which has no UTF-8 form');
  }
  const senBytes = Buffer.byteLength(m.sender, 'utf8');
  if (senBytes > MAX_SENDER_BYTES) {
    throw new ImPayloadError('SENDER_TOO_LONG', `sender is ${senBytes} bytes of UTF-8, at most ${MAX_SENDER_BYTES} fit Sen-len`);
  }
  if (typeof m.ts !== 'number' || !Number.isInteger(m.ts) || m.ts < 0 || m.ts > MAX_U32) {
    throw new ImPayloadError('TS_INVALID', `ts must be an integer 0..${MAX_U32}, got ${describe(m.ts)}`);
  }
  checkNibble(m.kind, 'KIND_INVALID', 'kind');
  checkNibble(m.media, 'MEDIA_INVALID', 'media');

  let json: string;
  try {
    json = JSON.stringify(m.content);
  } catch (e) {
    // BigInt members, cycles or a throwing toJSON.
    const why = e instanceof Error ? e.message : String(e);
    throw new ImPayloadError('CONTENT_NOT_JSON', `content cannot be written as JSON: ${why}`);
  }
  if (json === undefined) {
    throw new ImPayloadError('CONTENT_NOT_JSON', `content cannot be written as JSON: got ${describe(m.content)}`);
  }
  // Check what will actually be on the wire rather than the object: toJSON, undefined
  // members and NaN all change in JSON.stringify, and the receiver only sees the JSON.
  const bad = checkContent(JSON.parse(json), undefined);
  if (bad) throw bad;

  // JSON.stringify escapes lone surrogates (well-formed stringify), so this is exact UTF-8.
  const conBytes = Buffer.byteLength(json, 'utf8');
  if (conBytes > MAX_U32) {
    throw new ImPayloadError('CONTENT_TOO_LONG', `content is ${conBytes} bytes, Con-len holds at most ${MAX_U32}`);
  }
  const out = Buffer.allocUnsafe(SEN_LEN_SIZE + senBytes + TS_SIZE + TYPE_SIZE + CON_LEN_SIZE + conBytes);
  let at = out.writeUInt8(senBytes, 0);
  at += out.write(m.sender, at, 'utf8');
  at = out.writeUInt32BE(m.ts, at);
  at = out.writeUInt8((m.kind << 4) | m.media, at);
  at = out.writeUInt32BE(conBytes, at);
  out.write(json, at, 'utf8');
  return out;
}
