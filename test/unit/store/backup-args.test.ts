import { describe, expect, it } from 'vitest';
import { parseBackupArgs } from '../../../src/store/backup.js';
import { parseArgs } from '../../../src/cli-args.js';

describe('switchboard backup arguments', () => {
  it('takes OUT, --data-dir, --config/-c and --compact, in any order, with or without "="', () => {
    expect(parseBackupArgs(['out'])).toEqual({ out: 'out', compact: false, help: false });
    expect(parseBackupArgs(['--compact', '--data-dir', '/var/lib/switchboard', '/backups/today'])).toEqual({
      out: '/backups/today',
      dataDir: '/var/lib/switchboard',
      compact: true,
      help: false,
    });
    expect(parseBackupArgs(['-c', 'sb.yaml', 'x', '--data-dir=d'])).toMatchObject({ configFile: 'sb.yaml', dataDir: 'd', out: 'x' });
    expect(parseBackupArgs(['--help']).help).toBe(true);
  });

  it('refuses a missing OUT, a second positional, an unknown flag and a flag without its value', () => {
    expect(() => parseBackupArgs([])).toThrow(/OUT is missing/);
    expect(() => parseBackupArgs(['a', 'b'])).toThrow(/unexpected argument "b"/);
    expect(() => parseBackupArgs(['--fast', 'a'])).toThrow(/unknown flag "--fast"/);
    expect(() => parseBackupArgs(['a', '--data-dir'])).toThrow(/--data-dir needs a value/);
  });

  it('the CLI passes everything after "backup" through, --help included', () => {
    expect(parseArgs(['backup', '--data-dir', 'd', 'out', '--compact'])).toEqual({ command: 'backup', overrides: {}, rest: ['--data-dir', 'd', 'out', '--compact'] });
    expect(parseArgs(['backup', '--help']).rest).toEqual(['--help']);
    expect(parseArgs(['help', 'backup'])).toMatchObject({ command: 'help', rest: ['backup'] });
  });
});
