/**
 * The Orthanc client's transport: basic auth, timeouts, retries with backoff on connection errors and
 * 5xx for idempotent calls, zod-validated answers. JSON calls go through axios, instance files through
 * node:http (see fileStream); both take the base URL, Authorization header and timeout set up once, and
 * every answer or failure of either goes through withRetries and toError. Errors name the call but
 * never the credentials, and never echo DICOM values.
 */
import nodeHttp, { type IncomingMessage } from 'node:http';
import nodeHttps from 'node:https';
import type { Readable } from 'node:stream';
import { createKeepAliveAgent } from './keepAliveAgent';
import axios, { AxiosError, type AxiosInstance, type AxiosRequestConfig } from 'axios';
import type { z } from 'zod';

export interface OrthancClientOptions {
  url: string;
  username?: string;
  password?: string;
  timeoutMs?: number;
  /** Attempts for idempotent calls on connection errors and 5xx (first try included). */
  attempts?: number;
  /** First backoff delay; doubles per attempt. */
  backoffMs?: number;
}

export class OrthancError extends Error {
  constructor(
    message: string,
    readonly details: { method: string; path: string; status?: number; code?: string; orthancDetails?: string },
  ) {
    super(message);
    this.name = 'OrthancError';
  }

  /** True when Orthanc could not be reached or failed internally: worth retrying later. */
  get transient(): boolean {
    return this.details.status === undefined || this.details.status >= 500;
  }

  get notFound(): boolean {
    return this.details.status === 404;
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);

/** A transport error (axios' or node:http's, never an answer: 5xx answers are retried apart) worth another try. */
function isTransient(error: unknown): boolean {
  if (error instanceof OrthancError || !(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined || TRANSIENT_CODES.has(code);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export type OrthancTransport = ReturnType<typeof createOrthancTransport>;

export function createOrthancTransport(options: OrthancClientOptions) {
  const attempts = Math.max(1, options.attempts ?? 4);
  const backoffMs = options.backoffMs ?? 250;
  const baseUrl = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 60_000;
  const auth: Record<string, string> =
    options.username !== undefined
      ? { Authorization: `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}` }
      : {};
  const transport = new URL(baseUrl).protocol === 'https:' ? nodeHttps : nodeHttp;
  // One pool for both paths, whose sockets survive Orthanc's one-second keep-alive (keepAliveAgent.ts).
  const agent = createKeepAliveAgent(new URL(baseUrl).protocol);
  const http: AxiosInstance = axios.create({
    baseURL: baseUrl,
    timeout: timeoutMs,
    headers: auth,
    httpAgent: agent,
    httpsAgent: agent,
    maxContentLength: Infinity,
    maxBodyLength: Infinity,
    // Keep our own error handling: 4xx are answers, not exceptions, until we decide.
    validateStatus: () => true,
  });

  function toError(method: string, path: string, error: unknown): OrthancError {
    if (error instanceof OrthancError) return error;
    const code = (error as NodeJS.ErrnoException).code;
    if (error instanceof AxiosError || code !== undefined) {
      return new OrthancError(
        `Orthanc ${method} ${path} failed: ${code ?? (error as Error).message} (is Orthanc reachable at ${options.url}?)`,
        { method, path, code },
      );
    }
    return new OrthancError(`Orthanc ${method} ${path} failed: ${(error as Error).message}`, { method, path });
  }

  /**
   * One call under the client's rules, whatever the transport: an idempotent call (`retry`) is tried
   * again with doubling backoff after a transient transport error or a 5xx answer; a 4xx, or the last
   * 5xx, is an OrthancError with Orthanc's details.
   */
  async function withRetries<A extends { status: number; body: unknown }>(
    method: string,
    path: string,
    retry: boolean,
    perform: () => Promise<A>,
  ): Promise<A> {
    for (let attempt = 1; ; attempt += 1) {
      const last = !retry || attempt >= attempts;
      let answer: A;
      try {
        answer = await perform();
      } catch (error) {
        if (last || !isTransient(error)) throw toError(method, path, error);
        await sleep(backoffMs * 2 ** (attempt - 1));
        continue;
      }
      if (answer.status >= 500 && !last) {
        await drain(answer.body);
        await sleep(backoffMs * 2 ** (attempt - 1));
        continue;
      }
      if (answer.status >= 400) {
        const orthancDetails = await describeErrorBody(answer.body);
        throw new OrthancError(
          `Orthanc ${method} ${path} answered ${answer.status}${orthancDetails ? `: ${orthancDetails}` : ''}`,
          { method, path, status: answer.status, orthancDetails },
        );
      }
      return answer;
    }
  }

  async function send<T = unknown>(
    method: string,
    path: string,
    config: AxiosRequestConfig = {},
    retry = method === 'GET' || method === 'PUT' || method === 'DELETE',
  ): Promise<{ status: number; data: T; headers: Record<string, unknown> }> {
    const answer = await withRetries(method, path, retry, async () => {
      const response = await http.request<T>({ method, url: path, ...config });
      return { status: response.status, body: response.data, headers: response.headers };
    });
    return { status: answer.status, data: answer.body, headers: answer.headers };
  }

  async function getJson<S extends z.ZodType>(
    path: string,
    schema: S,
    config: AxiosRequestConfig = {},
  ): Promise<z.infer<S>> {
    const { data } = await send('GET', path, config);
    return validate(schema, data, 'GET', path);
  }

  async function postJson<S extends z.ZodType>(
    path: string,
    body: unknown,
    schema: S,
    retry = false,
  ): Promise<z.infer<S>> {
    const { data } = await send('POST', path, { data: body, headers: { 'Content-Type': 'application/json' } }, retry);
    return validate(schema, data, 'POST', path);
  }

  // The bulk path (hundreds of files per study) goes straight through node:http instead of axios:
  // axios' per-request work (config merging, headers objects, garbage) was a measurable share of the
  // download step's CPU on a 2-core machine, and its default Accept-Encoding made Orthanc gzip every
  // file (HttpCompressionEnabled is on by default), costing CPU on both ends: together they halved
  // throughput. `identity` keeps the bytes exactly as stored.
  function getOnce(path: string): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const request = transport.get(
        `${baseUrl}${path}`,
        { agent, timeout: timeoutMs, headers: { Accept: 'application/dicom', 'Accept-Encoding': 'identity', ...auth } },
        resolve,
      );
      request.on('timeout', () =>
        request.destroy(Object.assign(new Error(`no data for ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      );
      request.on('error', reject);
    });
  }

  async function fileStream(path: string): Promise<Readable> {
    const answer = await withRetries('GET', path, true, async () => {
      const response = await getOnce(path);
      return { status: response.statusCode ?? 0, body: response };
    });
    return answer.body;
  }

  return { url: options.url, send, getJson, postJson, fileStream };
}

export function validate<S extends z.ZodType>(schema: S, data: unknown, method: string, path: string): z.infer<S> {
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new OrthancError(
      `Orthanc ${method} ${path} returned an unexpected answer (${first?.path.join('.') || 'body'}: ${first?.message}); is ORTHANC_URL pointing at Orthanc?`,
      { method, path },
    );
  }
  return parsed.data;
}

async function drain(data: unknown): Promise<void> {
  if (data && typeof (data as Readable).resume === 'function') (data as Readable).resume();
}

/** Orthanc's JSON error body carries `Details`/`Message`; a stream body is read (bounded) for it. */
async function describeErrorBody(data: unknown): Promise<string | undefined> {
  let body = data;
  if (body && typeof (body as Readable).on === 'function') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body as Readable) {
      size += (chunk as Buffer).length;
      if (size > 64 * 1024) break;
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (body && typeof body === 'object') {
    const record = body as Record<string, unknown>;
    const details = [record.Message, record.Details].filter((v) => typeof v === 'string' && v !== '');
    return details.length > 0 ? details.join(' - ') : undefined;
  }
  return typeof body === 'string' && body.length > 0 ? body.slice(0, 500) : undefined;
}
