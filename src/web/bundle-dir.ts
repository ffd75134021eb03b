/** Where `npm run build` puts the web client (web/build.ts): `dist/web` under the package root. */
import { fileURLToPath } from 'node:url';

/**
 * The default `web.dir`. This module runs from src/web/ (sources, under tsx) or from
 * dist/src/web/ (compiled), so the package root is two or three levels up.
 */
export function defaultWebDir(moduleUrl: string = import.meta.url): string {
  const fromSources = new URL(moduleUrl).pathname.endsWith('.ts');
  return fileURLToPath(new URL(fromSources ? '../../dist/web' : '../../../dist/web', moduleUrl));
}
