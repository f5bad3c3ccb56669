/**
 * The CLI's way to the app's operator API: the function key goes in the `x-functions-key` header (never
 * in the URL, so it is in no message), every request is bounded in time, and the failures a person
 * can act on (nothing listening, a refused key, a timeout) become a CliError with exit code 2.
 */
import { CliError } from './io';

export interface ApiOptions {
  url: string;
  key?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
  /** The app's clock (the Date header), for the clock check of `doctor`. */
  date?: Date;
}

export interface Api {
  /** The base URL as it may be printed: no credentials, query or fragment. */
  readonly where: string;
  get<T = unknown>(route: string): Promise<ApiAnswer<T>>;
  post<T = unknown>(route: string): Promise<ApiAnswer<T>>;
}

export function defaultUrl(env: NodeJS.ProcessEnv = process.env): string {
  return `http://127.0.0.1:${env.FUNCTIONS_HTTP_PORT?.trim() || '7071'}`;
}

/** A base URL fit to print: scheme, host, port and path only. */
export function printableUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

export function parseBaseUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`--url: '${raw.slice(0, 200)}' is not a URL (e.g. http://127.0.0.1:7071)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new CliError(`--url: expected an http(s) URL, got ${url.protocol}`);
  if (url.username || url.password)
    throw new CliError(
      '--url: put no credentials in the URL; pass the function key with --key or AUTOMATION_FUNCTION_KEY',
    );
  return url;
}

export function createApi(options: ApiOptions): Api {
  const base = parseBaseUrl(options.url);
  const where = printableUrl(base);
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 30_000;

  async function request<T>(method: 'GET' | 'POST', route: string): Promise<ApiAnswer<T>> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (options.key) headers['x-functions-key'] = options.key;
    // The API refuses a POST without a JSON content type (a browser form cannot forge one).
    if (method === 'POST') headers['Content-Type'] = 'application/json';
    const target = `${where}/api/${route}`;
    let response: Response;
    try {
      response = await doFetch(target, {
        method,
        headers,
        body: method === 'POST' ? '{}' : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const e = error as Error & { cause?: { code?: string; message?: string } };
      const why =
        e.name === 'TimeoutError'
          ? `no answer within ${timeoutMs / 1000} s`
          : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new CliError(`cannot reach the app at ${where} (${why}); is it running? (--url, FUNCTIONS_HTTP_PORT)`);
    }
    if (response.status === 401 || response.status === 403)
      throw new CliError(
        `the app at ${where} refused the key (HTTP ${response.status}); pass the function key with --key or AUTOMATION_FUNCTION_KEY`,
      );
    const text = await response.text();
    let body: unknown = undefined;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        throw new CliError(
          `the app at ${where} answered ${method} /api/${route} with HTTP ${response.status}, not JSON`,
        );
      }
    }
    if (response.status === 404 && body === undefined)
      throw new CliError(
        `${where} has no /api/${route} (HTTP 404): is this the autorthanc function app, and up to date?`,
      );
    const date = response.headers.get('date');
    return { status: response.status, body: body as T, ...(date ? { date: new Date(date) } : {}) };
  }

  return { where, get: (route) => request('GET', route), post: (route) => request('POST', route) };
}

/** The `error` an API answer carries (its 4xx bodies are `{error}`), else the HTTP status. */
export function errorOf(answer: ApiAnswer): string {
  const body = answer.body as { error?: unknown } | undefined;
  return typeof body?.error === 'string' ? body.error : `HTTP ${answer.status}`;
}
