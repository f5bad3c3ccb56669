/** Headless Chromium for the dashboard tests: Debian's binary (the test fails loudly without it). */
import { chromium, type Browser } from 'playwright-core';
import { requireBinary } from './process';

/** Root in CI containers needs --no-sandbox; /dev/shm there is too small for Chromium's default. */
export function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: requireBinary('chromium', 'chromium'),
    args: ['--no-sandbox', '--disable-dev-shm-usage', ...extraArgs],
  });
}
