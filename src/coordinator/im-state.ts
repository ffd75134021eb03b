/**
 * The IM layer's editable state, owned by the coordinator: pre-subscription templates,
 * the user directory, the routing rules, and (with holdNewUsers) which users have ever
 * connected. Seeded from the configuration; once edited through the admin API it is
 * kept in `{dataDir}/im-state.json` and that file wins at the next start (the log says
 * so), because runtime edits must survive restarts.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImConfig } from '../config/schema.js';
import { parseDirectoryEntry, parseTemplate, type DirectoryEntry } from '../im/presub.js';
import { parseRule, type RoutingRule } from '../im/rules.js';

interface StateFile {
  version: 1;
  templates: string[];
  directory: DirectoryEntry[];
  rules: RoutingRule[];
  seen: string[];
}

export class ImState {
  templates: string[];
  readonly directory = new Map<string, DirectoryEntry>();
  rules: RoutingRule[];
  /** Users who connected at least once (only tracked with holdNewUsers). */
  readonly seen = new Set<string>();
  /** Where the state came from, for the start-up log. */
  readonly source: 'config' | 'file';
  private readonly file: string;
  private saveTimer?: NodeJS.Timeout;

  constructor(cfg: ImConfig, dataDir: string) {
    this.file = join(dataDir, 'im-state.json');
    const saved = readState(this.file);
    this.source = saved ? 'file' : 'config';
    this.templates = [...(saved?.templates ?? cfg.presubscribe.templates)];
    this.rules = [...(saved?.rules ?? cfg.rules)];
    for (const e of saved?.directory ?? cfg.presubscribe.directory) this.directory.set(e.uid, e);
    for (const uid of saved?.seen ?? []) this.seen.add(uid);
  }

  /** Writes now (admin edits: the API answers after the state is durable). */
  save(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    const data: StateFile = { version: 1, templates: this.templates, directory: [...this.directory.values()], rules: this.rules, seen: [...this.seen] };
    mkdirSync(join(this.file, '..'), { recursive: true });
    // Write then rename: a crash mid-write never leaves a torn file behind.
    writeFileSync(`${this.file}.tmp`, JSON.stringify(data, null, 1));
    renameSync(`${this.file}.tmp`, this.file);
  }

  /** Coalesces frequent small changes (first logins) into one write per second. */
  saveSoon(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.save(), 1000);
    this.saveTimer.unref();
  }

  close(): void {
    if (this.saveTimer) this.save();
  }
}

function readState(file: string): StateFile | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const raw = JSON.parse(text) as Partial<StateFile>;
    if (raw.version !== 1) throw new Error(`unknown version ${String(raw.version)}`);
    return {
      version: 1,
      templates: (raw.templates ?? []).map((t) => parseTemplate(t)),
      directory: (raw.directory ?? []).map((e) => parseDirectoryEntry(e)),
      rules: uniqueRules((raw.rules ?? []).map((r) => parseRule(r))),
      seen: (raw.seen ?? []).filter((s): s is string => typeof s === 'string'),
    };
  } catch (err) {
    throw new Error(`${file} is not a valid IM state file (${(err as Error).message}); fix or delete it`);
  }
}

/** Rules are addressed by id (admin API): a repeated id is an error, not a silent shadow. */
export function uniqueRules(rules: RoutingRule[]): RoutingRule[] {
  const seen = new Set<string>();
  for (const r of rules) {
    if (seen.has(r.id)) throw new Error(`rule id "${r.id}" appears twice`);
    seen.add(r.id);
  }
  return rules;
}
