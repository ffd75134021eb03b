// Container health check (HEALTHCHECK in ops/Dockerfile): exits 0 when the broker answers
// 200 on its HTTP port, 1 otherwise. Node's own fetch, because slim images have no curl.
//
//   node ops/healthcheck.mjs [/healthz | /readyz]
//
// The port is the one the broker is configured with (SWITCHBOARD_LISTENERS__WS__PORT,
// 8083 by default); HEALTHCHECK_URL replaces the whole URL (not SWITCHBOARD_*: the broker
// takes every such variable for a setting).
const path = process.argv[2] ?? '/healthz';
const port = process.env.SWITCHBOARD_LISTENERS__WS__PORT || '8083';
const url = process.env.HEALTHCHECK_URL || `http://127.0.0.1:${port}${path}`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  const body = (await res.text()).trim();
  if (res.status !== 200) console.error(`${url}: ${res.status} ${body}`);
  process.exit(res.status === 200 ? 0 : 1);
} catch (err) {
  console.error(`${url}: ${err?.cause?.code ?? err?.message ?? err}`);
  process.exit(1);
}
