/** src/web: where the built client is looked for, its content types, and what /web/config tells the page. */
import { describe, expect, it } from 'vitest';
import { defaultWebDir } from '../../../src/web/bundle-dir.js';
import { contentTypeOf, PAGE_CSP } from '../../../src/web/static-files.js';
import { webClientConfig } from '../../../src/web/routes.js';
import { loadConfig } from '../../../src/config/load.js';

describe('defaultWebDir', () => {
  it('is dist/web of the package, from the sources and from the compiled code', () => {
    expect(defaultWebDir('file:///opt/sb/src/web/bundle-dir.ts')).toBe('/opt/sb/dist/web');
    expect(defaultWebDir('file:///opt/sb/dist/src/web/bundle-dir.js')).toBe('/opt/sb/dist/web');
  });
});

describe('contentTypeOf', () => {
  it('names the bundle types, and nothing is guessed', () => {
    expect(contentTypeOf('index.html')).toBe('text/html; charset=utf-8');
    expect(contentTypeOf('assets/app-X1.js')).toBe('text/javascript; charset=utf-8');
    expect(contentTypeOf('assets/style-X1.CSS')).toBe('text/css; charset=utf-8');
    expect(contentTypeOf('assets/icon-X.svg')).toBe('image/svg+xml');
    expect(contentTypeOf('manifest.webmanifest')).toBe('application/manifest+json; charset=utf-8');
    expect(contentTypeOf('README')).toBe('application/octet-stream');
  });
  it('the page may only load its own code', () => {
    expect(PAGE_CSP).toContain("script-src 'self'");
    expect(PAGE_CSP).toContain("frame-ancestors 'none'");
  });
});

describe('webClientConfig', () => {
  it('the default configuration: open login (no users file), no JWT, files on', () => {
    expect(webClientConfig(loadConfig({ env: {} }))).toEqual({
      mqttPath: { ws: '/mqtt', wss: '/mqtt' },
      openLogin: true,
      jwt: false,
      files: { enabled: true, maxBytes: 104_857_600 },
    });
  });
  it('a users file or no anonymous logins means passwords; a JWT secret offers tokens', () => {
    const c = loadConfig({ env: {}, overrides: { auth: { usersFile: '/etc/sb/users', jwt: { secret: 'x'.repeat(32) } }, im: { files: { enabled: false } } } });
    expect(webClientConfig(c)).toMatchObject({ openLogin: false, jwt: true, files: { enabled: false } });
    expect(webClientConfig(loadConfig({ env: {}, overrides: { auth: { allowAnonymous: false } } })).openLogin).toBe(false);
  });
});
