/**
 * The regression guard (issue 11): every report compares Switchboard with the previous
 * committed run of the same kind (bench/results/*.json tracked by git, same --quick, the
 * newest before this one that shares cases with it), case by case: Switchboard then and
 * now, and its ratio to each peer then and now. A case where Switchboard got more than
 * 10 % worse is flagged, so a slowdown is seen before it lands. Numbers only: nothing
 * fails on them (this machine is shared and noisy; compare medians, rerun when in doubt).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { BrokerName } from './brokers.js';
import type { CaseSummary } from './report.js';

/** What a committed result file keeps that the comparison needs. */
export interface StoredRun {
  file: string;
  startedAt: string;
  quick: boolean;
  summaries: CaseSummary[];
}

export interface ComparisonRow {
  key: string;
  unit: string;
  higherIsBetter: boolean;
  now: number;
  before: number;
  /** > 1: Switchboard better now than before (oriented like the peer ratios). */
  change: number;
  /** Switchboard's ratio to each peer, now and before (> 1 = Switchboard better). */
  peers: Array<{ peer: BrokerName; now: number; before: number }>;
}

/** Worse than this (now / before, oriented) is flagged. */
export const REGRESSION_THRESHOLD = 0.9;

const caseKey = (c: CaseSummary): string => `${c.scenario}/${c.caseName}`;

/** Switchboard / peer, oriented so > 1 means Switchboard did better; NaN without numbers. */
function oriented(c: CaseSummary, a: number, b: number): number {
  const r = c.higherIsBetter ? a / b : b / a;
  return Number.isFinite(r) && r > 0 ? r : NaN;
}

function medianOf(c: CaseSummary, b: BrokerName): number {
  const s = c.byBroker[b];
  return s && s.n > 0 ? s.median : NaN;
}

/** The newest committed run before `startedAt`, of the same quickness, sharing a case with `cases`. */
export function pickBaseline(runs: StoredRun[], startedAt: string, quick: boolean, cases: CaseSummary[]): StoredRun | undefined {
  const keys = new Set(cases.map(caseKey));
  return runs
    .filter((r) => r.startedAt < startedAt && r.quick === quick && r.summaries.some((c) => keys.has(caseKey(c)) && Number.isFinite(medianOf(c, 'switchboard'))))
    .sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1))[0];
}

export function compare(now: CaseSummary[], before: CaseSummary[]): ComparisonRow[] {
  const old = new Map(before.map((c) => [caseKey(c), c]));
  const rows: ComparisonRow[] = [];
  for (const c of now) {
    const b = old.get(caseKey(c));
    if (!b) continue;
    const sbNow = medianOf(c, 'switchboard');
    const sbBefore = medianOf(b, 'switchboard');
    if (!Number.isFinite(sbNow) || !Number.isFinite(sbBefore)) continue;
    const peers = (Object.keys(c.byBroker) as BrokerName[])
      .filter((p) => p !== 'switchboard' && !p.startsWith('switchboard'))
      .map((peer) => ({ peer, now: oriented(c, sbNow, medianOf(c, peer)), before: oriented(b, sbBefore, medianOf(b, peer)) }));
    rows.push({ key: caseKey(c), unit: c.unit, higherIsBetter: c.higherIsBetter, now: sbNow, before: sbBefore, change: oriented(c, sbNow, sbBefore), peers });
  }
  return rows;
}

const num = (v: number): string => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : String(Number(v.toPrecision(3)))) : 'n/a');
const ratio = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'n/a');

export function renderComparison(baseline: StoredRun, rows: ComparisonRow[]): string {
  const L: string[] = [];
  L.push(`## Against the previous committed run (${path.basename(baseline.file)})`);
  L.push('');
  L.push(`Switchboard now and in ${baseline.startedAt}; "change" > 1 = better now; the peer columns give Switchboard's ratio to each peer in this run / in that run (> 1 = Switchboard better). Flagged: more than ${Math.round((1 - REGRESSION_THRESHOLD) * 100)} % worse.`);
  L.push('');
  const peers = [...new Set(rows.flatMap((r) => r.peers.map((p) => p.peer)))];
  L.push(`| case | unit | Switchboard now | before | change |${peers.map((p) => ` vs ${p} now / before |`).join('')}`);
  L.push(`|---|---|---:|---:|---:|${peers.map(() => '---:|').join('')}`);
  for (const r of rows) {
    const flag = Number.isFinite(r.change) && r.change < REGRESSION_THRESHOLD ? ' **slower**' : '';
    const cells = peers.map((p) => {
      const x = r.peers.find((q) => q.peer === p);
      return x ? `${ratio(x.now)} / ${ratio(x.before)}` : '–';
    });
    L.push(`| ${r.key} | ${r.unit} | ${num(r.now)} | ${num(r.before)} | ${ratio(r.change)}${flag} |${cells.map((c) => ` ${c} |`).join('')}`);
  }
  const slower = rows.filter((r) => r.change < REGRESSION_THRESHOLD);
  L.push('');
  L.push(slower.length === 0 ? 'No case is more than 10 % worse than before.' : `${slower.length} case(s) more than 10 % worse: ${slower.map((r) => r.key).join(', ')} (rerun to tell noise from a regression).`);
  return L.join('\n');
}

/** The result JSONs git tracks (the committed runs), read; unreadable ones are skipped. */
export function committedRuns(repoRoot: string): StoredRun[] {
  const r = spawnSync('git', ['ls-files', 'bench/results/*.json'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) return [];
  const out: StoredRun[] = [];
  for (const rel of r.stdout.split('\n').filter(Boolean)) {
    try {
      const j = JSON.parse(readFileSync(path.join(repoRoot, rel), 'utf8')) as { kind?: string; startedAt?: string; options?: { quick?: boolean }; summaries?: CaseSummary[] };
      if (j.kind !== 'bench' || typeof j.startedAt !== 'string' || !Array.isArray(j.summaries)) continue;
      out.push({ file: rel, startedAt: j.startedAt, quick: j.options?.quick === true, summaries: j.summaries });
    } catch {
      // a file from an older format: not a baseline
    }
  }
  return out;
}
