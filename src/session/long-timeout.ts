/**
 * setTimeout for delays beyond Node's limit: a delay above 2^31-1 ms (~24.8 days) fires
 * after 1 ms instead, and session expiry may be up to 2^32-1 seconds. Longer delays are
 * chained in steps under the limit.
 */
const MAX_DELAY = 2 ** 31 - 1;

export interface LongTimer {
  cancel(): void;
}

export function longTimeout(fn: () => void, ms: number): LongTimer {
  let handle: NodeJS.Timeout;
  const due = Date.now() + ms;
  const arm = () => {
    const left = due - Date.now();
    handle = left > MAX_DELAY ? setTimeout(arm, MAX_DELAY) : setTimeout(fn, Math.max(0, left));
  };
  arm();
  return { cancel: () => clearTimeout(handle) };
}
