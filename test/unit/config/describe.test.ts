// Keeps docs/configuration.md in step with the schema and the CLI flags.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FLAGS } from '../../../src/cli-args.js';
import { describeConfig, DOC_PATH, withGeneratedTable } from '../../../src/config/describe.js';
import { envVarName } from '../../../src/config/load.js';
import { listFields } from '../../../src/config/schema.js';

const doc = readFileSync(DOC_PATH, 'utf8');

describe('describeConfig', () => {
  it('has one row per setting with its env variable and default', () => {
    const table = describeConfig();
    const fields = listFields();
    expect(table.split('\n')).toHaveLength(fields.length + 2);
    for (const { path } of fields) {
      expect(table).toContain(`| \`${path}\` |`);
      expect(table).toContain(envVarName(path));
    }
    expect(table).toContain('| `limits.maxInflight` | integer 1..65535 | `1000` | `SWITCHBOARD_LIMITS__MAX_INFLIGHT` |');
  });
});

describe('docs/configuration.md', () => {
  it('mentions every key path, env variable and CLI flag', () => {
    for (const { path } of listFields()) {
      expect(doc, path).toContain(`\`${path}\``);
      expect(doc, path).toContain(envVarName(path));
    }
    for (const { flag } of FLAGS) expect(doc, flag).toContain(flag);
  });

  it('contains the current generated table (run `npx tsx src/config/describe.ts --write` to refresh)', () => {
    expect(withGeneratedTable(doc)).toBe(doc);
  });
});
