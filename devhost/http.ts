/**
 * HTTP triggers as the host serves them: `/{routePrefix}/{route}` with route templates, method
 * lists, keys from `x-functions-key` or `?code=` (function keys or the master key for `function`,
 * the master key for `admin`), and 404/401/500 answers with empty bodies. Core Tools does not check
 * keys unless asked (`--enforce-auth` here); the container always does. Keys are compared in constant
 * time, and requests addressed to a name that is not loopback are refused (DNS rebinding).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { RegisteredFunction, TypedData } from './core';
import { sameKey, type Keys } from './keys';

interface RouteSegment {
  literal?: string;
  param?: string;
  optional?: boolean;
  constraint?: string;
  /** `{*rest}`: the rest of the path, slashes included (ASP.NET catch-all). */
  catchAll?: boolean;
}

export interface HttpRoute {
  fn: RegisteredFunction;
  triggerName: string;
  methods: string[];
  authLevel: 'anonymous' | 'function' | 'admin';
  template: string;
  segments: RouteSegment[];
}

export function compileRoute(fn: RegisteredFunction): HttpRoute | undefined {
  const entry = Object.entries(fn.metadata.bindings).find(([, b]) => b.type === 'httpTrigger');
  if (!entry) return undefined;
  const [triggerName, binding] = entry;
  const template = ((binding.route as string | undefined) ?? fn.metadata.name).replace(/^\/+|\/+$/g, '');
  if (/^(admin|runtime)(\/|$)/i.test(template))
    throw new Error(`Function '${fn.metadata.name}': routes starting with 'admin' or 'runtime' are reserved`);
  const segments =
    template === ''
      ? []
      : template.split('/').map((part): RouteSegment => {
          const match = /^\{(\*?)([A-Za-z0-9_]+)(?::([a-z]+))?(\?)?\}$/.exec(part);
          if (!match) return { literal: part.toLowerCase() };
          return {
            param: match[2],
            constraint: match[3],
            optional: match[4] === '?' || match[1] === '*',
            catchAll: match[1] === '*',
          };
        });
  const methods = ((binding.methods as string[] | undefined) ?? ['GET', 'POST']).map((m) => m.toUpperCase());
  return {
    fn,
    triggerName,
    methods,
    authLevel: (binding.authLevel as HttpRoute['authLevel']) ?? 'anonymous',
    template,
    segments,
  };
}

/**
 * ASP.NET routing tries more specific templates first, whatever the registration order: segment by
 * segment, a literal beats a constrained parameter, which beats a plain one, then optional, then
 * catch-all. So `studies/search` wins over `studies/{id}`.
 */
export function compareRoutes(a: HttpRoute, b: HttpRoute): number {
  const rank = (s: RouteSegment | undefined): number =>
    s === undefined ? 5 : s.literal !== undefined ? 0 : s.catchAll ? 4 : s.optional ? 3 : s.constraint ? 1 : 2;
  for (let i = 0; i < Math.max(a.segments.length, b.segments.length); i += 1) {
    const diff = rank(a.segments[i]) - rank(b.segments[i]);
    if (diff !== 0) return diff;
  }
  return 0;
}

export function matchRoute(route: HttpRoute, parts: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  let i = 0;
  for (const segment of route.segments) {
    const part = parts[i];
    if (segment.literal !== undefined) {
      if (part === undefined || part.toLowerCase() !== segment.literal) return undefined;
    } else if (part === undefined) {
      if (!segment.optional) return undefined;
      continue;
    } else if (segment.catchAll) {
      params[segment.param!] = parts
        .slice(i)
        .map((p) => decodeURIComponent(p))
        .join('/');
      return params;
    } else {
      if (segment.constraint === 'int' && !/^-?\d+$/.test(part)) return undefined;
      params[segment.param!] = decodeURIComponent(part);
    }
    i += 1;
  }
  return i === parts.length ? params : undefined;
}

export function authorised(level: HttpRoute['authLevel'], key: string | undefined, keys: Keys): boolean {
  if (level === 'anonymous') return true;
  if (key === undefined || key === '') return false;
  // Every key is compared (no early exit), so the time does not tell which kind of key matched.
  const master = sameKey(key, keys.masterKey);
  const anyFunctionKey = Object.values(keys.functionKeys)
    .map((k) => sameKey(key, k))
    .includes(true);
  return master || (level === 'function' && anyFunctionKey);
}

/**
 * DNS rebinding: a web page can point its own host name at 127.0.0.1 and then call this host from
 * the browser as if it were same-origin, anonymous routes and unchecked keys (the default) included.
 * The browser still sends the page's name in `Host`, so only loopback names are served: `localhost`
 * and its subdomains (RFC 6761 keeps them on loopback), 127.0.0.0/8 and `[::1]`, plus any name
 * listed in `allowed` (`DEVHOST_ALLOWED_HOSTS`, for a local reverse proxy that passes its own name).
 */
export function loopbackHost(hostHeader: string | undefined, allowed: readonly string[] = []): boolean {
  if (hostHeader === undefined) return false;
  const value = hostHeader.trim().toLowerCase();
  let name: string;
  const bracketed = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(value);
  if (bracketed) name = bracketed[1];
  else {
    const plain = /^([a-z0-9.-]+)(?::\d{1,5})?$/.exec(value);
    if (!plain) return false;
    name = plain[1].replace(/\.$/, '');
  }
  if (
    allowed
      .map((a) => a.trim().toLowerCase())
      .filter((a) => a !== '')
      .includes(name)
  )
    return true;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) === 6) return name === '::1' || name === '0:0:0:0:0:0:0:1';
  return false;
}

export function requestKey(request: IncomingMessage, url: URL): string | undefined {
  const header = request.headers['x-functions-key'];
  return (Array.isArray(header) ? header[0] : header) ?? url.searchParams.get('code') ?? undefined;
}

export async function readBody(request: IncomingMessage, limit = 100 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > limit) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The RPC shape of an HTTP trigger input (body as bytes: the worker's RawHttpBodyBytes capability). */
export function toRpcHttpInput(
  request: IncomingMessage,
  url: URL,
  params: Record<string, string>,
  body: Buffer,
): TypedData {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) query[key] = value;
  return {
    http: {
      method: request.method ?? 'GET',
      url: url.toString(),
      headers,
      query,
      params,
      body: { bytes: new Uint8Array(body) },
    },
  };
}

interface RpcHttpResponse {
  statusCode?: string;
  headers?: Record<string, string>;
  cookies?: Array<{
    name: string;
    value: string;
    domain?: { value: string };
    path?: { value: string };
    expires?: { value: { seconds: number } };
    secure?: { value: boolean };
    httpOnly?: { value: boolean };
    sameSite?: number;
    maxAge?: { value: number };
  }>;
  body?: TypedData;
}

function cookieHeader(c: NonNullable<RpcHttpResponse['cookies']>[number]): string {
  const parts = [`${c.name}=${c.value}`];
  if (c.domain?.value) parts.push(`Domain=${c.domain.value}`);
  if (c.path?.value) parts.push(`Path=${c.path.value}`);
  if (c.expires?.value) parts.push(`Expires=${new Date(c.expires.value.seconds * 1000).toUTCString()}`);
  if (c.maxAge?.value !== undefined) parts.push(`Max-Age=${c.maxAge.value}`);
  if (c.secure?.value) parts.push('Secure');
  if (c.httpOnly?.value) parts.push('HttpOnly');
  if (c.sameSite === 1) parts.push('SameSite=Lax');
  if (c.sameSite === 2) parts.push('SameSite=Strict');
  if (c.sameSite === 3) parts.push('SameSite=None');
  return parts.join('; ');
}

/** Writes the function's `$return` value; undefined means 200 with an empty body. */
export function writeRpcResponse(response: ServerResponse, value: TypedData | undefined): void {
  const http = value?.http as RpcHttpResponse | undefined;
  if (!http) {
    response.writeHead(200, { 'Content-Length': '0' }).end();
    return;
  }
  const body = http.body?.bytes
    ? Buffer.from(http.body.bytes)
    : http.body?.string !== undefined
      ? Buffer.from(http.body.string)
      : Buffer.alloc(0);
  const headers: Record<string, string | string[]> = { ...(http.headers ?? {}) };
  if (http.cookies?.length) headers['set-cookie'] = http.cookies.map(cookieHeader);
  headers['content-length'] = String(body.length);
  response.writeHead(Number(http.statusCode ?? 200), headers).end(body);
}

export function emptyAnswer(response: ServerResponse, status: number): void {
  response.writeHead(status, { 'Content-Length': '0' }).end();
}
