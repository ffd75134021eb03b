// Single byte ranges (RFC 9110 section 14), which is what media players seek with.

export type RangeResult =
  /** Serve the whole representation with 200: no Range, one we ignore, or several ranges. */
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

const SINGLE_RE = /^(\d*)-(\d*)$/;

/** `end` is inclusive, as in Content-Range. */
export function parseRange(header: string, size: number): RangeResult {
  const h = header.trim();
  if (h === '') return { kind: 'full' };
  const eq = h.indexOf('=');
  // Other units, and anything not shaped like a byte range, are ignored: the RFC lets a
  // server answer any Range with the full representation.
  if (eq < 0 || h.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'full' };
  const spec = h.slice(eq + 1).trim();
  // Several ranges would need multipart/byteranges; the full file is an allowed answer
  // and players never ask for more than one range anyway.
  if (spec.includes(',')) return { kind: 'full' };
  const m = SINGLE_RE.exec(spec);
  if (!m) return { kind: 'full' };
  const [, first, last] = m as unknown as [string, string, string];
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    // Suffix range: the last n bytes (all of them when n exceeds the size).
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  // Absurdly long digit strings become huge numbers or Infinity, which the comparisons
  // below still treat correctly (beyond the end / clamped to it).
  const start = Number(first);
  let end = size - 1;
  if (last !== '') {
    const e = Number(last);
    // last < first is syntactically invalid, which means "ignore the header".
    if (e < start) return { kind: 'full' };
    end = Math.min(e, size - 1);
  }
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}
