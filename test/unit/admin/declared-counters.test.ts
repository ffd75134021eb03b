import { describe, expect, it } from 'vitest';
import { DECLARED_COUNTERS, renderMetrics } from '../../../src/admin/render-metrics.js';
import { Metrics } from '../../../src/admin/metrics.js';

describe('counters declared at 0 (DECLARED_COUNTERS)', () => {
  it('render at 0 before anything counted them, each with a HELP text of its own, as counters', () => {
    const m = new Metrics('main');
    for (const s of DECLARED_COUNTERS) m.inc(s, 0);
    const text = renderMetrics([m.snapshot()]);
    m.close();
    for (const s of DECLARED_COUNTERS) {
      expect(text.split('\n')).toContain(`switchboard_${s} 0`);
      const name = s.replace(/\{.*$/, '');
      expect(text).toMatch(new RegExp(`^# HELP switchboard_${name} (?!${name}$).+$`, 'm'));
      expect(text).toContain(`# TYPE switchboard_${name} counter`);
    }
  });

  it('adding 0 never resets what another increment counted', () => {
    const m = new Metrics('main');
    m.inc('store_errors_total');
    m.inc('store_errors_total', 0);
    expect(m.get('store_errors_total')).toBe(1);
    m.close();
  });
});
