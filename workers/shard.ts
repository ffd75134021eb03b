/** Session shard thread: wiring only. */
import { bootThread } from './thread-main.js';
import { startShardHost } from '../src/session/shard-host.js';
import type { ShardActor } from '../src/session/shard-actor.js';

let shard: ShardActor | undefined;
const { init, log, system, post } = bootThread(
  // Graceful stop: the store is committed and closed (nothing written is left behind).
  async () => shard?.close(),
  () => {},
);
shard = startShardHost({ system, index: init.index, config: init.config, topology: init.topology, log });
post({ t: 'ready' });
