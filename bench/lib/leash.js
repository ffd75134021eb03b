// `node bench/lib/leash.js CMD [ARGS...]`, spawned by bench/lib/brokers.ts with an IPC
// channel. Runs CMD as its child (same stdio, cwd, env), reports the child's pid over
// IPC, forwards SIGTERM/SIGINT to it, reports how it exited, and SIGKILLs it as soon as
// the IPC channel closes: so a broker dies with the bench even if the bench itself was
// killed with SIGKILL (a plain child would be orphaned and keep its port).
// Plain JavaScript: no loader, fast to start.
import { spawn } from 'node:child_process';

const [cmd, ...args] = process.argv.slice(2);
if (!cmd || !process.send) {
  process.stderr.write('usage: spawned by bench/lib/brokers.ts with an IPC channel: leash.js CMD [ARGS...]\n');
  process.exit(2);
}

const child = spawn(cmd, args, { stdio: 'inherit' });
child.on('error', (e) => {
  process.stderr.write(`leash: cannot start ${cmd}: ${e.message}\n`);
  process.send?.({ type: 'exit', code: null, signal: null, error: e.message }, () => process.exit(1));
});
if (child.pid !== undefined) process.send({ type: 'pid', pid: child.pid });

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  });
}
process.on('disconnect', () => {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (process.connected) process.send({ type: 'exit', code, signal }, () => process.exit(0));
  else process.exit(0);
});
