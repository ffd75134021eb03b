/**
 * Which independent peers (Debian packages) the integration tests can use on this machine.
 * A test that needs one is skipped with a warning when it is missing; `.ci/run` installs
 * them, so in CI none is skipped.
 */
import { spawnSync } from 'node:child_process';

/** True when `bin` can be started (it exists on PATH, whatever it answers to `arg`). */
export const onPath = (bin: string, arg: string): boolean =>
  (spawnSync(bin, [arg], { stdio: 'ignore' }).error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT';

/** mosquitto_pub and mosquitto_sub (Debian mosquitto-clients). */
export const HAVE_MOSQUITTO = onPath('mosquitto_pub', '--help') && onPath('mosquitto_sub', '--help');

/** mosquitto_pub that can send MQTT 5 properties (`-D`, mosquitto-clients 1.6 and later). */
export const HAVE_MOSQUITTO_V5_PROPS = (() => {
  const r = spawnSync('mosquitto_pub', ['--help'], { encoding: 'utf8' });
  return r.error === undefined && /-D\b/.test(`${r.stdout}${r.stderr}`);
})();
