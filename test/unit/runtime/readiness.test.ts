import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { READINESS_STATES } from '../../../src/protocol/control.js';
import { createReadinessCell, readReadiness, setReadiness } from '../../../src/runtime/readiness.js';

describe('readiness cell', () => {
  it('starts as "starting" and reads back every state set', () => {
    const cell = createReadinessCell();
    expect(readReadiness(cell)).toBe('starting');
    for (const s of READINESS_STATES) {
      setReadiness(cell, s);
      expect(readReadiness(cell)).toBe(s);
    }
  });

  it('is shared memory: a thread holding the cell sees the state set afterwards, without a message', async () => {
    const cell = createReadinessCell();
    // The worker waits until the value changes, then reports what it sees.
    const w = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       Atomics.wait(workerData, 0, 0, 5000);
       parentPort.postMessage(Atomics.load(workerData, 0));`,
      { eval: true, workerData: cell },
    );
    const seen = new Promise<number>((res) => w.once('message', res));
    await new Promise((r) => setTimeout(r, 50));
    setReadiness(cell, 'ready');
    Atomics.notify(cell, 0);
    expect(READINESS_STATES[await seen]).toBe('ready');
    await w.terminate();
  });
});
