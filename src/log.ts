/** pino JSON logs; one child logger per actor (`actor` field), one root per thread. */
import pino, { type Logger } from 'pino';
import type { LogLevel } from './config/schema.js';

export function createLogger(level: LogLevel, thread: string): Logger {
  // Direct synchronous writes to fd 1 from every thread: lines are small and atomic, and
  // nothing is lost when a thread crashes right after logging why.
  return pino({ level, base: { pid: process.pid, thread } }, pino.destination({ dest: 1, sync: true }));
}
