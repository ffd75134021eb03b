/**
 * CORS on the HTTP endpoints a browser app on another origin calls: /files and /api/v1
 * answer preflights and carry Access-Control-Allow-Origin for the configured origins only
 * (listeners.ws.corsOrigins); without the setting there are no CORS headers at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, TOPOLOGIES, type TestBroker } from '../helpers/broker.js';

const APP = 'https://chat.example.com';
const basic = `Basic ${Buffer.from('alice:pw').toString('base64')}`;

describe.each(TOPOLOGIES)('24 HTTP CORS (%s)', (topo) => {
  let b: TestBroker;
  let plain: TestBroker;
  beforeAll(async () => {
    b = await startTestBroker(topo, { listeners: { ws: { corsOrigins: [APP] } }, admin: { token: 't' } });
    plain = await startTestBroker('single', { admin: { token: 't' } });
  });
  afterAll(async () => {
    await b?.close();
    await plain?.close();
  });

  it('a preflight from an allowed origin is answered 204 with the methods and headers; another origin gets 403', async () => {
    const ok = await fetch(`${b.httpUrl}/files`, {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(ok.headers.get('access-control-allow-methods')).toContain('POST');
    const admin = await fetch(`${b.httpUrl}/api/v1/clients`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET' } });
    expect(admin.status).toBe(204);
    const evil = await fetch(`${b.httpUrl}/files`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(evil.status).toBe(403);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('upload, download (with Range) and the admin API carry Access-Control-Allow-Origin for an allowed origin only', async () => {
    const up = await fetch(`${b.httpUrl}/files?name=a.txt`, { method: 'POST', headers: { origin: APP, authorization: basic, 'content-type': 'text/plain' }, body: 'hello cors' });
    expect(up.status).toBe(201);
    expect(up.headers.get('access-control-allow-origin')).toBe(APP);
    const { url } = (await up.json()) as { url: string };
    const down = await fetch(url, { headers: { origin: APP, authorization: basic, range: 'bytes=0-4' } });
    expect(down.status).toBe(206);
    expect(await down.text()).toBe('hello');
    expect(down.headers.get('access-control-allow-origin')).toBe(APP);
    expect(down.headers.get('access-control-expose-headers')).toContain('content-range');
    const api = await fetch(`${b.httpUrl}/api/v1/rules`, { headers: { origin: APP, authorization: 'Bearer t' } });
    expect(api.status).toBe(200);
    expect(api.headers.get('access-control-allow-origin')).toBe(APP);
    const denied = await fetch(`${b.httpUrl}/api/v1/rules`, { headers: { origin: 'https://evil.example', authorization: 'Bearer t' } });
    expect(denied.headers.get('access-control-allow-origin')).toBeNull();
    // Errors carry the header too, so a browser app can read why (401 here).
    const unauth = await fetch(`${b.httpUrl}/files?name=a.txt`, { method: 'POST', headers: { origin: APP }, body: 'x' });
    expect(unauth.status).toBe(401);
    expect(unauth.headers.get('access-control-allow-origin')).toBe(APP);
  });

  it('without listeners.ws.corsOrigins there are no CORS headers (same-origin use only)', async () => {
    const r = await fetch(`${plain.httpUrl}/api/v1/rules`, { headers: { origin: APP, authorization: 'Bearer t' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
  });
});
