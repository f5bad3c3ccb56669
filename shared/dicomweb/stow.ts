/**
 * A small STOW-RS client (DICOM PS3.18 10.5): instances go to `<base>/studies` as
 * `multipart/related; type="application/dicom"`, and the server's answer (DICOM JSON) says which
 * were stored (ReferencedSOPSequence, 0008,1199) and which failed (FailedSOPSequence, 0008,1198,
 * with a FailureReason, 0008,1197). The caller retries only the failures.
 */
import { randomBytes } from 'node:crypto';
import axios, { type AxiosInstance } from 'axios';
import { parseDicom } from 'dicom-parser';

/** How to reach one DICOMweb server; the credentials come from the environment, never from a rule. */
export interface DicomWebDefinition {
  /** Base URL of the DICOMweb service, e.g. `http://pacs:8042/dicom-web` (no credentials in it). */
  url: string;
  username?: string;
  password?: string;
  token?: string;
}

export interface StowPart {
  sopInstanceUid: string;
  bytes: Buffer;
}

export interface StowOutcome {
  stored: string[];
  /** SOP Instance UID → why the server refused it (or why the request failed as a whole). */
  failed: Map<string, string>;
}

const CRLF = '\r\n';

/** One multipart/related body; the boundary is drawn again in the (unlikely) case a part contains it. */
export function multipartBody(parts: readonly Buffer[]): { body: Buffer; contentType: string; boundary: string } {
  let boundary: string;
  do boundary = `autorthanc-${randomBytes(12).toString('hex')}`;
  while (parts.some((p) => p.includes(boundary)));
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(`--${boundary}${CRLF}Content-Type: application/dicom${CRLF}${CRLF}`, 'latin1'));
    chunks.push(part, Buffer.from(CRLF, 'latin1'));
  }
  chunks.push(Buffer.from(`--${boundary}--${CRLF}`, 'latin1'));
  return {
    body: Buffer.concat(chunks),
    contentType: `multipart/related; type="application/dicom"; boundary=${boundary}`,
    boundary,
  };
}

/** The SOP Instance UID of a Part 10 file: its meta header's (0002,0003), else (0008,0018). */
export function sopInstanceUidOf(bytes: Buffer): string {
  const dataSet = parseDicom(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
    untilTag: 'x00080018',
  });
  const uid = (dataSet.string('x00020003') ?? dataSet.string('x00080018'))?.replace(/\0/g, '').trim();
  if (!uid) throw new Error('the file has no SOP Instance UID');
  return uid;
}

type DicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

function sequence(dataset: DicomJson, tag: string): DicomJson[] {
  const value = dataset[tag]?.Value;
  return Array.isArray(value) ? value.filter((v): v is DicomJson => typeof v === 'object' && v !== null) : [];
}

function first(dataset: DicomJson, tag: string): unknown {
  return dataset[tag]?.Value?.[0];
}

/** PS3.4 Table GG.4-1 and PS3.18 Table I.2-1 meanings of FailureReason, for a readable error. */
const FAILURE_REASONS: Record<number, string> = {
  0x0110: 'processing failure',
  0x0122: 'SOP class not supported',
  0x0124: 'not authorised',
  0xa700: 'out of resources',
  0xa900: 'data set does not match SOP class',
  0xc000: 'cannot understand',
  0xc122: 'referenced transfer syntax not supported',
};

function describeReason(code: unknown): string {
  if (typeof code !== 'number') return 'refused by the server (no FailureReason)';
  const hex = `0x${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return `refused by the server (FailureReason ${hex}${FAILURE_REASONS[code] ? `, ${FAILURE_REASONS[code]}` : ''})`;
}

/**
 * Which of `sent` the server stored. 200 means all stored, 202 some, 409 none (PS3.18 10.5.3).
 * An instance in neither sequence of an answer that lists references is counted as failed, so it is
 * sent again rather than assumed stored; a 200 without any body (some servers) stores everything.
 */
export function parseStowResponse(status: number, body: unknown, sent: readonly string[]): StowOutcome {
  const top: unknown = Array.isArray(body) ? (body as unknown[])[0] : body;
  const dataset: DicomJson = typeof top === 'object' && top !== null ? (top as DicomJson) : {};
  const failed = new Map<string, string>();
  for (const item of sequence(dataset, '00081198')) {
    const uid = first(item, '00081155');
    if (typeof uid === 'string') failed.set(uid, describeReason(first(item, '00081197')));
  }
  const referenced = dataset['00081199'] !== undefined;
  const acknowledged = new Set(
    sequence(dataset, '00081199')
      .map((item) => first(item, '00081155'))
      .filter((uid): uid is string => typeof uid === 'string'),
  );
  const stored: string[] = [];
  for (const uid of sent) {
    if (failed.has(uid)) continue;
    if (acknowledged.has(uid) || (status === 200 && !referenced)) stored.push(uid);
    else failed.set(uid, status === 409 ? 'refused by the server (409 Conflict)' : 'not acknowledged by the server');
  }
  return { stored, failed };
}

export interface StowClient {
  readonly url: string;
  /** Sends one batch; never throws for a refused batch, reports every instance of it as failed instead. */
  store(parts: readonly StowPart[]): Promise<StowOutcome>;
  /** Whether the server answers a QIDO query with these credentials (for the status report). */
  probe(): Promise<{ reachable: boolean; status?: number; error?: string }>;
}

function describeError(error: unknown): string {
  if (axios.isAxiosError(error)) {
    if (error.response) return `HTTP ${error.response.status} ${error.response.statusText ?? ''}`.trim();
    return error.code ? `${error.code}: ${error.message}` : error.message;
  }
  return (error as Error).message;
}

export function createStowClient(definition: DicomWebDefinition, timeoutMs = 120_000): StowClient {
  const base = definition.url.replace(/\/+$/, '');
  const http: AxiosInstance = axios.create({
    baseURL: base,
    timeout: timeoutMs,
    maxBodyLength: Infinity,
    maxContentLength: Infinity,
    // The STOW answer decides per instance; axios must not turn 409 into an exception.
    validateStatus: () => true,
    headers: definition.token
      ? { Authorization: `Bearer ${definition.token}` }
      : definition.username !== undefined
        ? {
            Authorization: `Basic ${Buffer.from(`${definition.username}:${definition.password ?? ''}`).toString('base64')}`,
          }
        : {},
  });
  return {
    url: base,
    async store(parts) {
      const sent = parts.map((p) => p.sopInstanceUid);
      const { body, contentType } = multipartBody(parts.map((p) => p.bytes));
      let response;
      try {
        response = await http.post('/studies', body, {
          headers: { 'Content-Type': contentType, Accept: 'application/dicom+json' },
          responseType: 'json',
        });
      } catch (error) {
        const reason = describeError(error);
        return { stored: [], failed: new Map(sent.map((uid) => [uid, reason])) };
      }
      if (response.status === 200 || response.status === 202 || response.status === 409) {
        const data: unknown = typeof response.data === 'string' && response.data.trim() === '' ? {} : response.data;
        return parseStowResponse(response.status, data, sent);
      }
      const reason = `HTTP ${response.status} ${response.statusText ?? ''}`.trim();
      return { stored: [], failed: new Map(sent.map((uid) => [uid, reason])) };
    },
    async probe() {
      try {
        const response = await http.get('/studies', {
          params: { limit: 1 },
          headers: { Accept: 'application/dicom+json' },
          timeout: 5_000,
        });
        // A STOW-only server may not offer QIDO (404/405): it answered, so it is reachable. Refused
        // credentials or a failing server are not.
        const refused = response.status === 401 || response.status === 403 || response.status >= 500;
        return refused
          ? { reachable: false, status: response.status, error: `HTTP ${response.status}` }
          : { reachable: true, status: response.status };
      } catch (error) {
        return { reachable: false, error: describeError(error) };
      }
    },
  };
}
