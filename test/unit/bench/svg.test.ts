import { describe, expect, it } from 'vitest';
import { barChart, escapeXml, formatCompact, lineChart, makeScale } from '../../../bench/lib/svg.js';

/** Every tag closed in order, no stray '<' or '&' in text: enough to catch broken markup. */
function expectWellFormed(svg: string): void {
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z][a-zA-Z0-9:-]*="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    const text = svg.slice(last, m.index);
    expect(text).not.toMatch(/[<>]|&(?!(amp|lt|gt|quot|apos);)/);
    last = tag.lastIndex;
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) expect(stack.pop()).toBe(name);
    else stack.push(name!);
  }
  expect(svg.slice(last).trim()).toBe('');
  expect(stack).toEqual([]);
}

describe('escapeXml / formatCompact', () => {
  it('escapes the five XML specials', () => {
    expect(escapeXml(`<a href="x">Tom & Jerry's</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&apos;s&lt;/a&gt;');
  });

  it('formats tick values compactly', () => {
    expect(formatCompact(0)).toBe('0');
    expect(formatCompact(1500)).toBe('1.5k');
    expect(formatCompact(25_000)).toBe('25k');
    expect(formatCompact(250_000)).toBe('250k');
    expect(formatCompact(3_400_000)).toBe('3.4M');
    expect(formatCompact(12.34)).toBe('12.3');
    expect(formatCompact(0.091)).toBe('0.091');
    expect(formatCompact(0.00002)).toBe('2e-5');
    expect(formatCompact(NaN)).toBe('n/a');
  });
});

describe('makeScale', () => {
  it('linear: nice ticks covering the data, mapped onto the pixel range', () => {
    const s = makeScale(0, 93, 300, 0, false);
    expect(s.min).toBe(0);
    expect(s.max).toBe(100);
    expect(s.ticks).toEqual([0, 20, 40, 60, 80, 100]);
    expect(s.map(0)).toBe(300);
    expect(s.map(100)).toBe(0);
    expect(s.map(50)).toBe(150);
  });

  it('log: whole decades, with 2 and 5 ticks over a short range', () => {
    const s = makeScale(0.09, 300, 400, 0, true);
    expect(s.min).toBe(0.01);
    expect(s.max).toBe(1000);
    expect(s.ticks).toEqual([0.01, 0.1, 1, 10, 100, 1000]);
    expect(s.map(1)).toBeCloseTo(240); // 2 of 5 decades up from 400 px
    const short = makeScale(3, 40, 100, 0, true);
    expect(short.ticks).toEqual([1, 2, 5, 10, 20, 50, 100]);
  });

  it('survives a flat or empty domain', () => {
    const s = makeScale(5, 5, 100, 0, false);
    expect(s.max).toBeGreaterThan(s.min);
    expect(Number.isFinite(s.map(5))).toBe(true);
    const l = makeScale(0, 0, 100, 0, true);
    expect(l.max).toBeGreaterThan(l.min);
  });
});

describe('barChart', () => {
  const svg = barChart({
    title: 'Throughput <msg/s> & more',
    categories: ['fanin-qos0', 'pairs'],
    series: [
      { name: 'Switchboard', values: [120_000, 50_000] },
      { name: 'Aedes', values: [40_000, null] },
    ],
    yLabel: 'msg/s',
    unit: 'msg/s',
  });

  it('is well-formed SVG with escaped text', () => {
    expectWellFormed(svg);
    expect(svg).toContain('Throughput &lt;msg/s&gt; &amp; more');
    expect(svg).not.toContain('<msg/s>');
  });

  it('draws one bar per value, marks a missing one, and has a legend and axis label', () => {
    expect(svg.match(/<rect x=/g)).toHaveLength(3 + 2); // 3 bars + 2 legend swatches
    expect(svg).toContain('n/a');
    expect(svg).toContain('>Switchboard<');
    expect(svg).toContain('>Aedes<');
    expect(svg).toContain('>msg/s<');
    expect(svg).toContain('<title>Switchboard, fanin-qos0: 120k msg/s</title>');
  });

  it('higher values are taller bars', () => {
    const heights = [...svg.matchAll(/<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" fill="#/g)].map((m) => Number(m[1]));
    expect(heights[0]).toBeGreaterThan(heights[1]!); // 120k > 50k
    expect(heights[1]).toBeGreaterThan(heights[2]!); // 50k > 40k
  });

  it('log scale says so on the axis and skips non-positive values', () => {
    const log = barChart({ title: 't', categories: ['a', 'b'], series: [{ name: 's', values: [0, 1000] }], yLabel: 'v', logY: true });
    expectWellFormed(log);
    expect(log).toContain('v (log scale)');
    expect(log.match(/<rect x=/g)).toHaveLength(1 + 1);
  });

  it('rotates category labels that do not fit', () => {
    const many = barChart({
      title: 't',
      categories: Array.from({ length: 12 }, (_, i) => `a rather long category name ${i}`),
      series: [{ name: 's', values: Array.from({ length: 12 }, (_, i) => i + 1) }],
      yLabel: 'v',
      width: 700,
    });
    expectWellFormed(many);
    expect(many).toContain('rotate(-35)');
  });

  it('says "no data" when there is nothing to draw', () => {
    const empty = barChart({ title: 't', categories: ['a'], series: [{ name: 's', values: [undefined] }], yLabel: 'v' });
    expectWellFormed(empty);
    expect(empty).toContain('no data');
  });
});

describe('lineChart', () => {
  it('draws a polyline per series, dashed when asked, with markers and a legend', () => {
    const svg = lineChart({
      title: 'Push time',
      series: [
        { name: 'Switchboard', points: [[20_000, 0.05], [10_000, 0.02]], color: '#1f77b4' },
        { name: 'paper "table 6"', points: [[10_000, 0.091], [20_000, 0.105]], dash: '6 4' },
      ],
      xLabel: 'connections',
      yLabel: 'seconds',
      logY: true,
    });
    expectWellFormed(svg);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('stroke-dasharray="6 4"');
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg).toContain('paper &quot;table 6&quot;');
    expect(svg).toContain('seconds (log scale)');
    expect(svg).toContain('>connections<');
    // Points are sorted by x: the polyline goes left to right.
    const pts = /<polyline points="([^"]+)"/.exec(svg)![1]!.split(' ').map((p) => Number(p.split(',')[0]));
    expect(pts[0]).toBeLessThan(pts[1]!);
  });

  it('leaves out points a log axis cannot show, and long series get no markers', () => {
    const svg = lineChart({
      title: 't',
      series: [{ name: 's', points: Array.from({ length: 100 }, (_, i) => [i, i] as [number, number]) }],
      xLabel: 'x',
      yLabel: 'y',
      logY: true,
    });
    expectWellFormed(svg);
    expect(/<polyline points="([^"]+)"/.exec(svg)![1]!.split(' ')).toHaveLength(99);
    expect(svg).not.toContain('<circle');
  });
});
