/**
 * Where a thread entry is: `workers/<name>.js` next to the compiled code; or, when running
 * from sources (tests, tsx), `workers/dev-loader.mjs`, which registers the tsx loader and
 * then imports `workers/<name>.ts` (passed in argv).
 */
export function workerEntry(name: string, moduleUrl: string = import.meta.url): { url: URL; argv: string[] } {
  const isTs = new URL(moduleUrl).pathname.endsWith('.ts');
  // This module is src/runtime/*; entries live in workers/ two levels up.
  if (!isTs) return { url: new URL(`../../workers/${name}.js`, moduleUrl), argv: [] };
  return {
    url: new URL('../../workers/dev-loader.mjs', moduleUrl),
    argv: [new URL(`../../workers/${name}.ts`, moduleUrl).href],
  };
}
