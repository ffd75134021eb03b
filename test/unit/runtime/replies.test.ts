import { afterEach, describe, expect, it, vi } from 'vitest';
import { Replies } from '../../../src/runtime/replies.js';

describe('Replies', () => {
  afterEach(() => vi.useRealTimers());

  it('runs done once, with every reply, when the n-th arrives; later and unknown replies are ignored', () => {
    const r = new Replies<number>();
    const done = vi.fn();
    const id = r.expect(2, done);
    r.reply(id, 1);
    expect(done).not.toHaveBeenCalled();
    r.reply(id, 2);
    r.reply(id, 3);
    r.reply(id + 1, 4);
    expect(done).toHaveBeenCalledTimes(1);
    expect(done).toHaveBeenCalledWith([1, 2]);
  });

  it('at the deadline, done runs with the replies so far (a restarting thread never hangs the asker)', () => {
    vi.useFakeTimers();
    const r = new Replies<string>();
    const done = vi.fn();
    const id = r.expect(3, done, 100);
    r.reply(id, 'a');
    vi.advanceTimersByTime(100);
    expect(done).toHaveBeenCalledWith(['a']);
    r.reply(id, 'b');
    expect(done).toHaveBeenCalledTimes(1);
  });

  it('ids are distinct per request; waiting for none finishes at once; close drops what is open', () => {
    vi.useFakeTimers();
    const r = new Replies<void>();
    const none = vi.fn();
    const a = r.expect(0, none);
    expect(none).toHaveBeenCalledWith([]);
    const open = vi.fn();
    const b = r.expect(1, open, 50);
    expect(b).not.toBe(a);
    r.close();
    vi.advanceTimersByTime(100);
    r.reply(b, undefined);
    expect(open).not.toHaveBeenCalled();
  });
});
