/**
 * A local Application Insights ingestion endpoint. The Azure Monitor exporter speaks HTTPS only, so
 * it serves a certificate made here, trusted by the function app through NODE_EXTRA_CA_CERTS; it
 * keeps every item it receives and the paths they were posted to. The SDK's own statistics are
 * switched off in `env`, so nothing leaves this machine.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { makeTempDir, requireBinary } from './process';

export interface Ingestion<T> {
  /** Settings that point the function app at this endpoint. */
  env: Record<string, string>;
  received: T[];
  paths: Set<string>;
  stop(): void;
}

export async function startIngestion<T = unknown>(): Promise<Ingestion<T>> {
  const openssl = requireBinary('openssl', 'openssl');
  const dir = makeTempDir('ingestion-');
  execFileSync(
    openssl,
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const received: T[] = [];
  const paths = new Set<string>();
  const server = createServer(
    { key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) },
    (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (c: Buffer) => chunks.push(c));
      request.on('end', () => {
        paths.add(request.url ?? '');
        let body = Buffer.concat(chunks);
        if (request.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const items = JSON.parse(body.toString('utf8')) as T[];
        received.push(...items);
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `https://127.0.0.1:${(server.address() as { port: number }).port}/`;
  return {
    env: {
      APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=11111111-2222-3333-4444-555555555555;IngestionEndpoint=${endpoint};LiveEndpoint=${endpoint}`,
      NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem'),
      APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
      APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true',
      APPLICATIONINSIGHTS_SDKSTATS_DISABLED: 'true',
    },
    received,
    paths,
    stop: () => server.close(),
  };
}
