/**
 * The IM layer's editable state, owned by the coordinator: pre-subscription templates,
 * the user directory, the routing rules, and (with holdNewUsers) which users have ever
 * connected. Seeded from the configuration; once edited through the admin API it is
 * kept in the coordinator's store (document `im`) and wins at the next start (the log
 * says so), because runtime edits must survive restarts.
 *
 * Earlier versions kept it in `{dataDir}/im-state.json`: such a file is read once, moved
 * into the store and renamed `im-state.json.migrated`.
 */
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { ImConfig } from '../config/schema.js';
import { parseDirectoryEntry, parseTemplate, type DirectoryEntry } from '../im/presub.js';
import { parseRule, type RoutingRule } from '../im/rules.js';
import type { Store } from '../store/types.js';

interface StateFile {
  version: 1;
  templates: string[];
  directory: DirectoryEntry[];
  rules: RoutingRule[];
  seen: string[];
}

/** The store document holding the state. */
const DOC = 'im';

export class ImState {
  templates: string[];
  readonly directory = new Map<string, DirectoryEntry>();
  rules: RoutingRule[];
  /** Users who connected at least once (only tracked with holdNewUsers). */
  readonly seen = new Set<string>();
  /** Where the state came from, for the start-up log. */
  readonly source: 'config' | 'store' | 'file';
  private saveTimer?: NodeJS.Timeout;

  constructor(
    cfg: ImConfig,
    private readonly store: Store,
    dataDir?: string,
  ) {
    let saved = parseState(store.getDoc<unknown>(DOC), 'the store');
    let source: ImState['source'] = saved ? 'store' : 'config';
    const legacy = dataDir === undefined ? undefined : join(dataDir, 'im-state.json');
    if (!saved && legacy !== undefined && existsSync(legacy)) {
      saved = parseState(readJson(legacy), legacy);
      source = 'file';
    }
    this.source = source;
    this.templates = [...(saved?.templates ?? cfg.presubscribe.templates)];
    this.rules = [...(saved?.rules ?? cfg.rules)];
    for (const e of saved?.directory ?? cfg.presubscribe.directory) this.directory.set(e.uid, e);
    for (const uid of saved?.seen ?? []) this.seen.add(uid);
    if (source === 'file') {
      // Moved into the store once; the file stays beside it, renamed, for the record.
      this.store.putDoc(DOC, this.data());
      void this.store.commit().then(() => renameSync(legacy!, `${legacy}.migrated`));
    }
  }

  private data(): StateFile {
    return { version: 1, templates: this.templates, directory: [...this.directory.values()], rules: this.rules, seen: [...this.seen] };
  }

  /** Writes now; resolves once durable (admin edits are answered after that). */
  save(): Promise<void> {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    this.store.putDoc(DOC, this.data());
    return this.store.commit();
  }

  /** Coalesces frequent small changes (first logins) into one write per second. */
  saveSoon(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => void this.save(), 1000);
    this.saveTimer.unref();
  }

  /** Graceful stop: a pending coalesced write goes now. */
  close(): void {
    if (this.saveTimer) void this.save();
  }
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (err) {
    throw new Error(`the IM state in ${file} is not valid (${(err as Error).message}); fix or delete it`);
  }
}

function parseState(raw: unknown, where: string): StateFile | undefined {
  if (raw === undefined) return undefined; // nothing saved yet
  try {
    if (raw === null || typeof raw !== 'object') throw new Error('not an object');
    const r = raw as Partial<StateFile>;
    if (r.version !== 1) throw new Error(`unknown version ${String(r.version)}`);
    return {
      version: 1,
      templates: (r.templates ?? []).map((t) => parseTemplate(t)),
      directory: (r.directory ?? []).map((e) => parseDirectoryEntry(e)),
      rules: uniqueRules((r.rules ?? []).map((x) => parseRule(x))),
      seen: (r.seen ?? []).filter((x): x is string => typeof x === 'string'),
    };
  } catch (err) {
    throw new Error(`the IM state in ${where} is not valid (${(err as Error).message}); fix or delete it`);
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
