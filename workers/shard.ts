/** Session shard thread: wiring only. */
import { bootThread } from './thread-main.js';
import { startShardHost } from '../src/session/shard-host.js';

const { init, log, system, post } = bootThread(
  async () => {},
  () => {},
);
startShardHost({ system, index: init.index, config: init.config, topology: init.topology, log });
post({ t: 'ready' });
