/**
 * The alert settings from the environment. AUTOMATION_ALERT_WEBHOOKS is a comma-separated list of
 * http(s) URLs, each optionally prefixed with its body format (`teams=https://…`, `slack=…`,
 * `json=…`); an unprefixed URL takes AUTOMATION_ALERT_FORMAT (default json). The URLs hold their
 * services' tokens, so a problem names the entry's position, never its text.
 */
import { ALERT_FORMATS, type AlertFormat } from './format';
import type { AlertWebhook } from './alerts';

export interface AlertSettings {
  webhooks: AlertWebhook[];
  minIntervalSeconds: number;
  /** Below this share of free space on the storage root or staging an alert goes out; 0: never. */
  diskFreePercent: number;
}

export interface AlertEnvironment {
  AUTOMATION_ALERT_WEBHOOKS?: string;
  AUTOMATION_ALERT_FORMAT?: string;
  AUTOMATION_ALERT_MIN_INTERVAL_SECONDS?: number;
  AUTOMATION_ALERT_DISK_FREE_PERCENT?: number;
}

const isFormat = (word: string): word is AlertFormat => (ALERT_FORMATS as readonly string[]).includes(word);

export function alertSettings(env: AlertEnvironment, problems: string[]): AlertSettings {
  const fallback = (env.AUTOMATION_ALERT_FORMAT ?? 'json').toLowerCase();
  if (!isFormat(fallback))
    problems.push(
      `AUTOMATION_ALERT_FORMAT: expected one of ${ALERT_FORMATS.join(', ')}, got '${env.AUTOMATION_ALERT_FORMAT}'`,
    );
  const webhooks: AlertWebhook[] = [];
  const entries = (env.AUTOMATION_ALERT_WEBHOOKS ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  entries.forEach((entry, index) => {
    const prefixed = /^([a-z]+)=(.*)$/i.exec(entry);
    const format = prefixed ? prefixed[1].toLowerCase() : fallback;
    const raw = prefixed ? prefixed[2].trim() : entry;
    const where = `AUTOMATION_ALERT_WEBHOOKS: entry ${index + 1}`;
    if (!isFormat(format)) {
      // An unprefixed entry with a bad AUTOMATION_ALERT_FORMAT: that variable's problem says it.
      if (prefixed) problems.push(`${where}: the format before '=' must be one of ${ALERT_FORMATS.join(', ')}`);
      return;
    }
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      // Not quoted: a mistyped URL still carries its token.
      problems.push(`${where}: expected an http(s) URL, optionally prefixed with json=, teams= or slack=`);
      return;
    }
    webhooks.push({ url: url.toString(), format });
  });
  return {
    webhooks,
    minIntervalSeconds: env.AUTOMATION_ALERT_MIN_INTERVAL_SECONDS ?? 900,
    diskFreePercent: env.AUTOMATION_ALERT_DISK_FREE_PERCENT ?? 10,
  };
}
