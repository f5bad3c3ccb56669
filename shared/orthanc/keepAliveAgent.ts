/**
 * An HTTP agent that really keeps Orthanc's connections alive. Orthanc 1.10 answers every request
 * with `Keep-Alive: timeout=1` (one second, not configurable before 1.11), and Node's agent refuses
 * to pool a socket whose announced timeout is under its own one-second safety margin: every request
 * then opened a new TCP connection, which cost about two thirds of the download step's CPU on
 * studies of small files. This agent pools such sockets anyway and closes them itself once idle for
 * half the announced time, well before Orthanc does; a request that still meets a socket closed under
 * it fails with ECONNRESET, which the transport retries for idempotent calls.
 */
import nodeHttp from 'node:http';
import nodeHttps from 'node:https';
import type { Duplex } from 'node:stream';

/** Idle time allowed when the server announces none: Orthanc's one second, halved. */
const DEFAULT_IDLE_MS = 500;

/** How long a pooled socket may stay idle, from the answer's `Keep-Alive: timeout=N` (seconds). */
export function idleMsFor(keepAliveHeader: string | string[] | undefined): number {
  const header = Array.isArray(keepAliveHeader) ? keepAliveHeader[0] : keepAliveHeader;
  const seconds = Number(/(?:^|[\s,])timeout=(\d+)/i.exec(header ?? '')?.[1]);
  return Number.isFinite(seconds) && seconds > 0 ? (seconds * 1000) / 2 : DEFAULT_IDLE_MS;
}

type SocketWithAnswer = Duplex & {
  setTimeout(ms: number): void;
  _httpMessage?: { res?: { headers: Record<string, string | string[] | undefined> } };
};

function keepAlive(socket: Duplex, base: (socket: Duplex) => unknown): boolean {
  base(socket);
  const s = socket as SocketWithAnswer;
  s.setTimeout(idleMsFor(s._httpMessage?.res?.headers['keep-alive']));
  return true;
}

class KeepAliveHttpAgent extends nodeHttp.Agent {
  override keepSocketAlive(socket: Duplex): boolean {
    return keepAlive(socket, (s) => super.keepSocketAlive(s));
  }
}

class KeepAliveHttpsAgent extends nodeHttps.Agent {
  override keepSocketAlive(socket: Duplex): boolean {
    return keepAlive(socket, (s) => super.keepSocketAlive(s));
  }
}

export function createKeepAliveAgent(protocol: string): nodeHttp.Agent {
  const options = { keepAlive: true, scheduling: 'lifo' as const };
  return protocol === 'https:' ? new KeepAliveHttpsAgent(options) : new KeepAliveHttpAgent(options);
}
