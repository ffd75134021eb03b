/**
 * Builds the web client into dist/web (`npm run build` runs it after tsc), which the
 * broker serves at `/` (src/web/routes.ts):
 *
 *   index.html                 the page, pointing at the hashed assets
 *   sw.js                      the service worker (fixed name: it must be at the root)
 *   manifest.webmanifest       for "add to home screen" on phones
 *   assets/app-HASH.js|.css    the bundle (MQTT.js, the IM SDK from src/im, the app), cached forever
 *   assets/icon-HASH.svg
 *
 * Everything comes from npm through esbuild: no CDN. The integration test
 * (test/integration/41-web-client.test.ts) calls buildWeb() itself, so a fresh clone's
 * `npm test` needs no separate build step.
 *
 *   npx tsx web/build.ts [OUT_DIR]
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type BuildOptions } from 'esbuild';

const WEB = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_OUT = resolve(WEB, '..', 'dist', 'web');

const COMMON: BuildOptions = {
  bundle: true,
  platform: 'browser',
  target: 'es2022',
  minify: true,
  // The SDK (src/im/payload.ts) uses Node's Buffer: every free `Buffer` becomes the npm `buffer` package's.
  inject: [join(WEB, 'buffer-shim.ts')],
  define: { global: 'globalThis' },
  logLevel: 'warning',
};

function hashed(name: string, body: Buffer): string {
  const dot = name.lastIndexOf('.');
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 10);
  return `${name.slice(0, dot)}-${hash}${name.slice(dot)}`;
}

export interface WebBuild {
  outDir: string;
  /** Paths relative to outDir, with their sizes in bytes. */
  files: Array<{ path: string; bytes: number }>;
}

export async function buildWeb(outDir: string = DEFAULT_OUT): Promise<WebBuild> {
  const assets = join(outDir, 'assets');
  // Hashed names change with every edit: start clean so old ones do not pile up.
  rmSync(assets, { recursive: true, force: true });
  mkdirSync(assets, { recursive: true });

  const app = await build({
    ...COMMON,
    entryPoints: { app: join(WEB, 'src', 'main.ts'), style: join(WEB, 'styles.css') },
    format: 'esm',
    outdir: assets,
    entryNames: '[name]-[hash]',
    sourcemap: 'linked',
    metafile: true,
  });
  const outputs = Object.entries(app.metafile!.outputs);
  const url = (ext: string): string => {
    const out = outputs.find(([path, o]) => o.entryPoint !== undefined && path.endsWith(ext));
    if (!out) throw new Error(`web build: no ${ext} output`);
    return `/assets/${basename(out[0])}`;
  };

  // The worker needs no Buffer: without the shim it stays a few hundred bytes.
  const { inject: _inject, ...worker } = COMMON;
  await build({ ...worker, entryPoints: [join(WEB, 'sw.ts')], format: 'iife', outfile: join(outDir, 'sw.js') });

  const iconBody = readFileSync(join(WEB, 'icon.svg'));
  const icon = hashed('icon.svg', iconBody);
  writeFileSync(join(assets, icon), iconBody);
  const manifest = {
    name: 'Switchboard',
    short_name: 'Switchboard',
    start_url: '/',
    display: 'standalone',
    background_color: '#f3f5f8',
    theme_color: '#1f6feb',
    icons: [{ src: `/assets/${icon}`, sizes: 'any', type: 'image/svg+xml' }],
  };
  writeFileSync(join(outDir, 'manifest.webmanifest'), `${JSON.stringify(manifest, null, 2)}\n`);

  const values: Record<string, string> = { js: url('.js'), css: url('.css'), icon: `/assets/${icon}` };
  const page = readFileSync(join(WEB, 'index.html'), 'utf8').replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    const v = values[k];
    if (v === undefined) throw new Error(`web/index.html: unknown placeholder {{${k}}}`);
    return v;
  });
  writeFileSync(join(outDir, 'index.html'), page);

  const files = ['index.html', 'sw.js', 'manifest.webmanifest', ...outputs.map(([p]) => relative(outDir, resolve(p))), `assets/${icon}`];
  return { outDir, files: files.map((path) => ({ path, bytes: statSync(join(outDir, path)).size })) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const out = await buildWeb(process.argv[2] ? resolve(process.argv[2]) : DEFAULT_OUT);
  const kb = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;
  console.log(`web client built into ${relative(process.cwd(), out.outDir) || '.'}: ${out.files.filter((f) => !f.path.endsWith('.map')).map((f) => `${f.path} (${kb(f.bytes)})`).join(', ')}`);
}
