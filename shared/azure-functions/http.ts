/**
 * Request bodies are untrusted: bounded in size, parsed as JSON, validated with zod, and every
 * rejection is a 4xx with a plain-English reason (never a 500, never an enqueue).
 */
import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import type { z } from 'zod';
import { describeIssue, describeIssues } from '../util/issues';

export const MAX_JSON_BODY_BYTES = 64 * 1024;

export type BodyResult<T> = { ok: true; value: T } | { ok: false; response: HttpResponseInit };

function reject(status: number, error: string): { ok: false; response: HttpResponseInit } {
  return { ok: false, response: { status, jsonBody: { error } } };
}

export async function readJsonBody<S extends z.ZodType>(
  request: HttpRequest,
  schema: S,
): Promise<BodyResult<z.infer<S>>>;
export async function readJsonBody<S extends z.ZodType>(
  request: HttpRequest,
  schema: S,
  options: { optional: true },
): Promise<BodyResult<z.infer<S> | undefined>>;
export async function readJsonBody<S extends z.ZodType>(
  request: HttpRequest,
  schema: S,
  options: { optional?: boolean } = {},
): Promise<BodyResult<z.infer<S> | undefined>> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > MAX_JSON_BODY_BYTES) return reject(413, `body larger than ${MAX_JSON_BODY_BYTES} bytes`);
  const bytes = Buffer.from(await request.arrayBuffer());
  if (bytes.length > MAX_JSON_BODY_BYTES) return reject(413, `body larger than ${MAX_JSON_BODY_BYTES} bytes`);
  if (bytes.length === 0)
    return options.optional ? { ok: true, value: undefined } : reject(400, 'a JSON body is required');
  const text = bytes.toString('utf8');
  if (Buffer.from(text, 'utf8').length !== bytes.length || text.includes('\u0000'))
    return reject(400, 'body is not UTF-8 text');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return reject(400, 'body is not valid JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return reject(400, describeIssues(parsed.error, 'body'));
  }
  return { ok: true, value: parsed.data };
}

/**
 * Operator actions (retry, manual run) change state, and behind nginx a browser's login travels with
 * any request to the site, a cross-site form post included. A form cannot send this content type
 * without a CORS preflight, which the API never grants, so requiring it stops cross-site requests.
 */
export function requireJsonContentType(request: HttpRequest): HttpResponseInit | undefined {
  const type = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json') return undefined;
  return {
    status: 415,
    jsonBody: {
      error:
        'send Content-Type: application/json (operator actions refuse other content types, so other sites cannot trigger them)',
    },
  };
}

/**
 * Parses URL query parameters like a body: unknown parameters are errors, not silently ignored, and
 * every rejection is a 400 with the reason. (The Functions host hands a function one value per name,
 * so lists are comma-separated, e.g. `rules=a,b`.) `code`, the function key in a URL, is not a parameter.
 */
export function readQuery<S extends z.ZodType>(request: Pick<HttpRequest, 'query'>, schema: S): BodyResult<z.infer<S>> {
  const raw: Record<string, string> = {};
  for (const [key, value] of request.query) if (key !== 'code') raw[key] = value;
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    return reject(
      400,
      parsed.error.issues
        .map((i) =>
          i.code === 'unrecognized_keys' ? `unknown parameter(s): ${i.keys.join(', ')}` : describeIssue(i, 'query'),
        )
        .join('; '),
    );
  return { ok: true, value: parsed.data };
}

/** The `{id}` of a route, validated; a bad one is a 400 that quotes (a bounded part of) what was sent. */
export function readRouteId(
  request: Pick<HttpRequest, 'params'>,
  schema: z.ZodType<string>,
  what: string,
): BodyResult<string> {
  const parsed = schema.safeParse(request.params.id);
  if (!parsed.success) return reject(400, `'${String(request.params.id).slice(0, 80)}' is not ${what}`);
  return { ok: true, value: parsed.data };
}
