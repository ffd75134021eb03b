/**
 * Debian's Chromium driven by playwright-core (which never downloads a browser of its
 * own), for the browser tests. Tests skip, saying why, when it is not installed; .ci/run
 * installs it.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const CHROMIUM_SKIP_REASON = `skipped: ${CHROMIUM} not found (install it with: apt-get install -y chromium; .ci/run does)`;

/** Headless, and quiet: nothing reaches out to Google's services during a test. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}
