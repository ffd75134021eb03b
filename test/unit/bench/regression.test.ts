/**
 * The bench's regression guard (bench/lib/regression.ts): which committed run is the
 * baseline, and the oriented comparison (> 1 = better now) with flags for > 10 % worse.
 */
import { describe, expect, it } from 'vitest';
import { compare, pickBaseline, renderComparison, type StoredRun } from '../../../bench/lib/regression.js';
import type { CaseSummary } from '../../../bench/lib/report.js';

const s = (median: number) => ({ median, min: median, max: median, n: 1, runs: 1, issues: [], details: {} });
const rate = (caseName: string, sb: number, aedes: number): CaseSummary => ({
  scenario: 'pairs',
  caseName,
  unit: 'msg/s',
  higherIsBetter: true,
  byBroker: { switchboard: s(sb), aedes: s(aedes) },
});
const time = (caseName: string, sb: number): CaseSummary => ({ scenario: 'conns', caseName, unit: 's', higherIsBetter: false, byBroker: { switchboard: s(sb) } });
const run = (file: string, startedAt: string, quick: boolean, summaries: CaseSummary[]): StoredRun => ({ file, startedAt, quick, summaries });

describe('bench regression guard', () => {
  it('the baseline is the newest earlier committed run of the same quickness that shares a case', () => {
    const cur = [rate('tcp', 100, 50)];
    const runs = [
      run('old', '2026-01-01', true, [rate('tcp', 90, 50)]),
      run('newer', '2026-02-01', true, [rate('tcp', 95, 50)]),
      run('full', '2026-02-02', false, [rate('tcp', 95, 50)]),
      run('other-cases', '2026-02-03', true, [rate('ws', 95, 50)]),
      run('later', '2026-04-01', true, [rate('tcp', 95, 50)]),
    ];
    expect(pickBaseline(runs, '2026-03-01', true, cur)?.file).toBe('newer');
    expect(pickBaseline(runs, '2026-03-01', false, cur)?.file).toBe('full');
    expect(pickBaseline([], '2026-03-01', true, cur)).toBeUndefined();
  });

  it('changes are oriented (> 1 = better now) for rates and times; peers\' ratios now and before', () => {
    const rows = compare([rate('tcp', 80, 40), time('push all', 2)], [rate('tcp', 100, 50), time('push all', 4)]);
    expect(rows).toHaveLength(2);
    expect(rows[0]!.change).toBeCloseTo(0.8);
    expect(rows[0]!.peers).toEqual([{ peer: 'aedes', now: 2, before: 2 }]);
    expect(rows[1]!.change).toBeCloseTo(2);
    const md = renderComparison(run('bench/results/x.json', '2026-01-01', false, []), rows);
    expect(md).toContain('x.json');
    expect(md).toMatch(/pairs\/tcp \| msg\/s \| 80 \| 100 \| 0\.80x \*\*slower\*\*/);
    expect(md).toMatch(/conns\/push all \| s \| 2 \| 4 \| 2\.00x \|/);
    expect(md).toContain('1 case(s) more than 10 % worse: pairs/tcp');
  });

  it('cases without a Switchboard number on either side are left out', () => {
    const none: CaseSummary = { ...rate('tcp', 1, 1), byBroker: { aedes: s(1) } };
    expect(compare([none], [rate('tcp', 1, 1)])).toEqual([]);
  });
});
