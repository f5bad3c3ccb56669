/**
 * A loopback HTTP server standing in for a webhook (Teams, Slack, a site's JSON endpoint): it keeps
 * every JSON body it receives, raw and parsed, so tests can look for what an alert says and what it
 * must not say.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  path: string;
  body: Record<string, unknown>;
  raw: string;
}

export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>`, to which a test appends its paths. */
  base: string;
  received: ReceivedWebhook[];
  close(): Promise<void>;
}

/** `statusFor`: the answer's status code for a request path (200 unless told). */
export async function startWebhookReceiver(statusFor: (path: string) => number = () => 200): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const path = request.url ?? '';
      received.push({ path, body: JSON.parse(raw) as Record<string, unknown>, raw });
      response.statusCode = statusFor(path);
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
