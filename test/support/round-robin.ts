/**
 * A loopback HTTP front that hands each request to the next of several backends, as Azure's front end
 * (or Docker's DNS for `--scale` replicas) spreads requests over function app instances. A backend
 * that refuses the connection is skipped, so an instance that is down costs nothing but a retry.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RoundRobin {
  url: string;
  /** How many requests each backend answered, by its port. */
  served: Map<number, number>;
  close(): Promise<void>;
}

export async function startRoundRobin(backendPorts: number[]): Promise<RoundRobin> {
  let next = 0;
  const served = new Map<number, number>(backendPorts.map((p) => [p, 0]));
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      const tryBackend = (left: number): void => {
        const port = backendPorts[next % backendPorts.length];
        next += 1;
        const forwarded = http.request(
          {
            host: '127.0.0.1',
            port,
            method: request.method,
            path: request.url,
            headers: { ...request.headers, host: `127.0.0.1:${port}` },
          },
          (answer) => {
            served.set(port, (served.get(port) ?? 0) + 1);
            response.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(response);
          },
        );
        forwarded.on('error', () => {
          if (left > 1) tryBackend(left - 1);
          else if (!response.headersSent) response.writeHead(502).end();
        });
        forwarded.end(body);
      };
      tryBackend(backendPorts.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
