/**
 * Webhook alerts (AUTOMATION_ALERT_WEBHOOKS): a failed job, a poisoned message, a destination that
 * does not answer C-ECHO, a disk nearly full. Three promises:
 *   - rate-limited: one alert per (kind, subject) per interval across all instances, claimed in
 *     Table storage before it is sent (AlertClaims), so a retried step or a timer on several
 *     instances sends it once;
 *   - PHI-free: an alert carries ids, rule names and redacted reasons; its text passes the storage
 *     root's path redaction once more on the way out;
 *   - harmless: notify never throws, a webhook that fails or hangs costs a log line.
 * Webhook URLs carry their tokens (Teams, Slack), so a log line names a webhook by number and host only.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../vocabulary';
import type { Redact } from '../pipeline/redact';
import { alertBody, type Alert, type AlertFormat } from './format';

export interface AlertWebhook {
  url: string;
  format: AlertFormat;
}

/** Who sends an alert: the first instance to claim (key, interval) since the last claim that long ago. */
export interface AlertClaims {
  /** True when no claim of `key` is younger than `intervalMs` (and records this one); false otherwise. */
  claim(key: string, intervalMs: number, now: Date): Promise<boolean>;
}

export interface WebhookResult {
  webhook: string;
  format: AlertFormat;
  ok: boolean;
  status?: number;
  error?: string;
}

export type NotifyOutcome = 'sent' | 'rate-limited' | 'no-webhooks' | 'failed';

export interface Alerts {
  readonly webhooks: number;
  /** Sends the alert to every webhook unless the same (kind, subject) was sent within the interval. Never throws. */
  notify(alert: Omit<Alert, 'at'>): Promise<NotifyOutcome>;
  /** Sends a test alert to every webhook, bypassing the rate limit, and reports what each answered. */
  test(): Promise<WebhookResult[]>;
}

export interface AlertsDeps {
  webhooks: AlertWebhook[];
  minIntervalSeconds: number;
  claims: AlertClaims;
  log: Logger;
  /** The storage root's path redaction (Redaction.anywhere): a last pass over the text. */
  redact?: Redact;
  fetch?: typeof fetch;
  timeoutMs?: number;
  now?: () => Date;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Slack refuses a section text over 3000 characters; a reason that long helps nobody in a chat. */
const MAX_TEXT = 1_500;

/** How a webhook is named in logs and answers: its position and host, never its path or query (the token). */
export function webhookLabel(webhook: AlertWebhook, index: number): string {
  let host = 'invalid URL';
  try {
    host = new URL(webhook.url).host;
  } catch {
    // A URL config parsing let through cannot be invalid; the label still says which entry it is.
  }
  return `webhook #${index + 1} (${webhook.format}, ${host})`;
}

/** The Table row a (kind, subject) is claimed under: hashed, as a subject may hold characters keys refuse. */
export function claimKey(alert: Pick<Alert, 'kind' | 'subject'>): string {
  return `${alert.kind}-${createHash('sha256').update(alert.subject).digest('hex').slice(0, 32)}`;
}

export function createAlerts(deps: AlertsDeps): Alerts {
  const post = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = () => (deps.now ? deps.now() : new Date());
  const redact = deps.redact ?? ((text: string) => text);

  function prepare(alert: Omit<Alert, 'at'>): Alert {
    const text = redact(alert.text);
    return {
      ...alert,
      title: redact(alert.title),
      text: text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text,
      at: now().toISOString(),
    };
  }

  async function send(alert: Alert, webhook: AlertWebhook, index: number): Promise<WebhookResult> {
    const label = webhookLabel(webhook, index);
    // A timer of our own rather than AbortSignal.timeout, whose unreferenced timer lets a process exit mid-send.
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(Object.assign(new Error('timeout'), { name: 'TimeoutError' })),
      timeoutMs,
    );
    try {
      const response = await post(webhook.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(alertBody(alert, webhook.format)),
        signal: abort.signal,
        redirect: 'error',
      });
      // The answer's body is drained unread: a receiver may echo the request (and so the URL).
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) {
        deps.log.warn(`Alert ${alert.kind} (${alert.subject}) to ${label}: HTTP ${response.status}`);
        return { webhook: label, format: webhook.format, ok: false, status: response.status };
      }
      return { webhook: label, format: webhook.format, ok: true, status: response.status };
    } catch (error) {
      // fetch's messages name the host at most; the cause (ECONNREFUSED, a timeout) is what helps.
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      const reason =
        abort.signal.aborted || (error as Error).name === 'TimeoutError'
          ? `no answer within ${timeoutMs} ms`
          : (cause ?? (error as Error).name);
      deps.log.warn(`Alert ${alert.kind} (${alert.subject}) to ${label} not delivered: ${reason}`);
      return { webhook: label, format: webhook.format, ok: false, error: reason };
    } finally {
      clearTimeout(timer);
    }
  }

  const sendAll = (alert: Alert) => Promise.all(deps.webhooks.map((w, i) => send(alert, w, i)));

  return {
    webhooks: deps.webhooks.length,

    async notify(raw) {
      if (deps.webhooks.length === 0) return 'no-webhooks';
      try {
        const alert = prepare(raw);
        if (!(await deps.claims.claim(claimKey(alert), deps.minIntervalSeconds * 1000, now()))) return 'rate-limited';
        const results = await sendAll(alert);
        return results.some((r) => r.ok) ? 'sent' : 'failed';
      } catch (error) {
        deps.log.warn(`Alert ${raw.kind} (${raw.subject}) not sent: ${redact((error as Error).message)}`);
        return 'failed';
      }
    },

    test() {
      return sendAll(
        prepare({
          kind: 'test',
          subject: 'test',
          title: 'Test alert from autorthanc-functions',
          text: 'This webhook receives the automation alerts (failed jobs, poisoned messages, destinations down, disk nearly full).',
          fields: {},
        }),
      );
    },
  };
}
