/**
 * Common start of a worker thread: the actor system with the links the supervisor
 * handed over, and the control channel (relink after a peer restart, stop, crash hook).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ActorSystem } from '../src/runtime/system.js';
import { PortLink } from '../src/runtime/port-link.js';
import { placementOf } from '../src/runtime/topology.js';
import { createLogger } from '../src/log.js';
import type { FromWorker, ToWorker, WorkerInit } from '../src/protocol/control.js';

export function bootThread(onStop: () => Promise<void>, onCrashCleanup: () => void, onReloadTls?: () => Promise<void>) {
  const init = workerData as WorkerInit;
  const log = createLogger(init.config.log.level, init.thread);
  const system = new ActorSystem(init.thread, placementOf(init.topology));
  for (const l of init.links) system.addLink(l.thread, new PortLink({ port: l.port, counters: l.counters, side: l.side }));
  // A failing message is logged, not fatal: one bad message must not cost every session
  // of the thread. Real crashes (uncaught errors outside receive) restart the thread.
  system.onActorError = (actor, err) => log.error({ err, actor }, 'actor failed on a message');
  const post = (m: FromWorker) => parentPort!.postMessage(m);
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception: thread exits and the supervisor restarts it');
    // A live uWS handle at thread teardown aborts the whole process: close it first.
    try {
      onCrashCleanup();
    } finally {
      process.exit(1);
    }
  });
  parentPort!.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'link':
        system.addLink(m.link.thread, new PortLink({ port: m.link.port, counters: m.link.counters, side: m.link.side }));
        break;
      case 'unlink':
        system.removeLink(m.thread);
        break;
      case 'tell':
        system.ref(m.to).tell(m.msg);
        break;
      case 'crash':
        setImmediate(() => {
          throw new Error('test hook: crash requested');
        });
        break;
      case 'reloadTls':
        (onReloadTls ?? (async () => {}))().then(
          () => post({ t: 'tlsReloaded' }),
          (err: unknown) => {
            log.error({ err }, 'TLS reload failed; the previous certificate stays in use');
            post({ t: 'tlsReloaded', error: (err as Error)?.message ?? String(err) });
          },
        );
        break;
      case 'stop':
        onStop().then(
          () => {
            system.flushAll();
            post({ t: 'stopped' });
          },
          (err: unknown) => {
            log.error({ err }, 'error while stopping');
            post({ t: 'stopped' });
          },
        );
        break;
    }
  });
  return { init, log, system, post };
}
