/**
 * The STOW-RS client's pieces without a server: the multipart/related body, the reading of the
 * server's answer (FailedSOPSequence, ReferencedSOPSequence, 200/202/409), the forward step's batching,
 * retry ranges and retry of only the refused instances, the DICOMWEB_<NAME> settings, and the rule
 * schema's Publish.Blob.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { loadConfig } from '../../shared/config';
import { multipartBody, parseStowResponse, sopInstanceUidOf } from '../../shared/dicomweb/stow';
import {
  STOW_BATCH_BYTES,
  STOW_BATCH_INSTANCES,
  decodeRanges,
  encodeRanges,
  stowBatches,
  type DestinationState,
  type ForwardDeps,
} from '../../shared/pipeline/steps/forward';
import { destinationsOf } from '../../shared/pipeline/destinations';
import { forwardHarness } from '../support/forward-harness';
import { parseRule } from '../../shared/rules';
import { blobNameFor, checkPrefix, withoutCredentials } from '../../shared/blob/publish';
import { generateStudy } from '../support/dicom';
import { problemsFor } from '../support/config';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';

/** Splits a multipart/related body back into its parts' headers and bytes, as a server would. */
function splitMultipart(body: Buffer, boundary: string): { headers: string; bytes: Buffer }[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: { headers: string; bytes: Buffer }[] = [];
  let at = body.indexOf(delimiter);
  assert.equal(at, 0, 'the body starts with the first delimiter');
  for (;;) {
    const after: number = at + delimiter.length;
    if (body.subarray(after, after + 2).toString() === '--') {
      assert.equal(body.subarray(after + 2).toString(), '\r\n', 'the close delimiter ends the body');
      return parts;
    }
    assert.equal(body.subarray(after, after + 2).toString(), '\r\n');
    const next = body.indexOf(delimiter, after);
    assert.ok(next > 0, 'every part is followed by a delimiter');
    const part = body.subarray(after + 2, next - 2);
    assert.equal(body.subarray(next - 2, next).toString(), '\r\n', 'a part ends with CRLF before the delimiter');
    const split = part.indexOf('\r\n\r\n');
    parts.push({ headers: part.subarray(0, split).toString('latin1'), bytes: part.subarray(split + 4) });
    at = next;
  }
}

const item = (uid: string, reason?: number) => ({
  '00081150': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.4'] },
  '00081155': { vr: 'UI', Value: [uid] },
  ...(reason !== undefined ? { '00081197': { vr: 'US', Value: [reason] } } : {}),
});

describe('STOW-RS multipart body', () => {
  it('holds each part byte for byte, typed application/dicom, between CRLF-delimited boundaries', () => {
    const parts = [randomBytes(1000), Buffer.from('\r\n--not-the-boundary\r\n'), Buffer.alloc(0), randomBytes(70_000)];
    const { body, contentType, boundary } = multipartBody(parts);
    assert.equal(contentType, `multipart/related; type="application/dicom"; boundary=${boundary}`);
    const split = splitMultipart(body, boundary);
    assert.equal(split.length, parts.length);
    split.forEach((p, i) => {
      assert.equal(p.headers, 'Content-Type: application/dicom');
      assert.ok(p.bytes.equals(parts[i]), `part ${i} is byte-identical`);
    });
  });

  it('never uses a boundary that occurs inside a part', () => {
    for (let i = 0; i < 20; i += 1) {
      const { body, boundary } = multipartBody([randomBytes(5000)]);
      assert.equal(body.indexOf(`--${boundary}`, 1) > 0, true);
      assert.equal(splitMultipart(body, boundary).length, 1);
    }
  });

  it('reads the SOP Instance UID of a generated Part 10 file', async () => {
    const study = await generateStudy({ series: [{ seriesNumber: 1, modality: 'MR', instances: 1 }] });
    const file = study.series[0].files[0];
    assert.equal(sopInstanceUidOf(readFileSync(file.path)), file.sopInstanceUID);
  });
});

describe('STOW-RS response', () => {
  it('200 with a ReferencedSOPSequence: all stored', () => {
    const outcome = parseStowResponse(200, { '00081199': { vr: 'SQ', Value: [item('1.1'), item('1.2')] } }, [
      '1.1',
      '1.2',
    ]);
    assert.deepEqual(outcome.stored, ['1.1', '1.2']);
    assert.equal(outcome.failed.size, 0);
  });

  it('202 with a FailedSOPSequence: only the listed ones failed, with their reason', () => {
    const outcome = parseStowResponse(
      202,
      {
        '00081198': { vr: 'SQ', Value: [item('1.2', 0xa700)] },
        '00081199': { vr: 'SQ', Value: [item('1.1'), item('1.3')] },
      },
      ['1.1', '1.2', '1.3'],
    );
    assert.deepEqual(outcome.stored, ['1.1', '1.3']);
    assert.deepEqual([...outcome.failed.keys()], ['1.2']);
    assert.match(outcome.failed.get('1.2')!, /0xA700, out of resources/);
  });

  it('409: nothing stored, failures listed or not', () => {
    const outcome = parseStowResponse(409, { '00081198': { vr: 'SQ', Value: [item('1.1', 0xc000)] } }, ['1.1', '1.2']);
    assert.deepEqual(outcome.stored, []);
    assert.match(outcome.failed.get('1.1')!, /0xC000, cannot understand/);
    assert.match(outcome.failed.get('1.2')!, /409/);
  });

  it('an instance missing from an answer that lists references is sent again, not assumed stored', () => {
    const outcome = parseStowResponse(200, { '00081199': { vr: 'SQ', Value: [item('1.1')] } }, ['1.1', '1.2']);
    assert.deepEqual(outcome.stored, ['1.1']);
    assert.equal(outcome.failed.get('1.2'), 'not acknowledged by the server');
  });

  it('a 200 without a body stores everything; a DICOM JSON array answer is read like an object', () => {
    assert.deepEqual(parseStowResponse(200, {}, ['1.1']).stored, ['1.1']);
    const outcome = parseStowResponse(202, [{ '00081198': { vr: 'SQ', Value: [item('1.1')] } }], ['1.1']);
    assert.match(outcome.failed.get('1.1')!, /no FailureReason/);
  });
});

describe('STOW-RS batches and retry ranges', () => {
  it('encodes and decodes index ranges', () => {
    assert.equal(encodeRanges([7, 0, 1, 2, 5, 8, 2]), '0-2,5,7-8');
    assert.deepEqual(decodeRanges('0-2,5,7-8'), [0, 1, 2, 5, 7, 8]);
    assert.equal(encodeRanges([]), '');
    assert.deepEqual(decodeRanges(''), []);
    const many = Array.from({ length: 5000 }, (_, i) => i);
    assert.equal(encodeRanges(many), '0-4999', 'a whole failed study stays a few bytes on the job');
  });

  it('cuts batches by count and by bytes, a single large instance alone', () => {
    const small = Array.from({ length: STOW_BATCH_INSTANCES * 2 + 1 }, (_, i) => i);
    assert.deepEqual(
      stowBatches(small, () => 1000).map((b) => b.length),
      [STOW_BATCH_INSTANCES, STOW_BATCH_INSTANCES, 1],
    );
    const sizes = [STOW_BATCH_BYTES / 2, STOW_BATCH_BYTES / 2, 1, STOW_BATCH_BYTES * 3, 10];
    assert.deepEqual(
      stowBatches([0, 1, 2, 3, 4], (i) => sizes[i]),
      [[0, 1], [2], [3], [4]],
    );
  });
});

describe('DICOMWEB_<NAME> settings', () => {
  const base = { AzureWebJobsStorage: 'UseDevelopmentStorage=true' };

  it('reads a base URL with basic credentials or a token, and defaults the publish account', () => {
    const config = loadConfig({
      ...base,
      DICOMWEB_PACS: 'http://pacs.example:8042/dicom-web/',
      DICOMWEB_PACS_USERNAME: 'alice',
      DICOMWEB_PACS_PASSWORD: 's3cret',
      DICOMWEB_CLOUD: 'https://cloud.example/dicomWeb',
      DICOMWEB_CLOUD_TOKEN: 'tok',
    });
    assert.deepEqual(config.dicomweb, {
      PACS: { url: 'http://pacs.example:8042/dicom-web', username: 'alice', password: 's3cret', token: undefined },
      CLOUD: { url: 'https://cloud.example/dicomWeb', username: undefined, password: undefined, token: 'tok' },
    });
    assert.equal(config.publishBlobConnectionString, 'UseDevelopmentStorage=true');
    assert.equal(
      loadConfig({ ...base, AUTOMATION_PUBLISH_BLOB_CONNECTION: 'other' }).publishBlobConnectionString,
      'other',
    );
  });

  it('a name ending in _TOKEN is a destination of its own when no DICOMWEB_<NAME> claims it', () => {
    const config = loadConfig({ ...base, DICOMWEB_MY_TOKEN: 'http://a.example/dw' });
    assert.deepEqual(Object.keys(config.dicomweb), ['MY_TOKEN']);
  });

  it('refuses bad URLs, credentials in the URL, half credentials and both kinds, without echoing a secret', () => {
    const problems = problemsFor({
      ...base,
      DICOMWEB_A: 'pacs:8042',
      DICOMWEB_B: 'http://bob:hunter2@pacs.example/dw',
      DICOMWEB_C: 'http://c.example/dw',
      DICOMWEB_C_USERNAME: 'carol',
      DICOMWEB_D: 'http://d.example/dw',
      DICOMWEB_D_TOKEN: 'tok-d-secret',
      DICOMWEB_D_USERNAME: 'dave',
      DICOMWEB_D_PASSWORD: 'pw-d-secret',
    });
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems.join('\n'), /DICOMWEB_A: expected the http\(s\) base URL/);
    assert.match(problems.join('\n'), /DICOMWEB_B: put credentials in DICOMWEB_B_USERNAME/);
    assert.match(problems.join('\n'), /DICOMWEB_C: set DICOMWEB_C_USERNAME and DICOMWEB_C_PASSWORD together/);
    assert.match(problems.join('\n'), /DICOMWEB_D: set either DICOMWEB_D_TOKEN or/);
    for (const secret of ['hunter2', 'tok-d-secret', 'pw-d-secret']) assert.ok(!problems.join('\n').includes(secret));
  });

  it('a DICOMweb name must not also be a modality', () => {
    const problems = problemsFor({
      ...base,
      MODALITY_PACS: 'PACS|10.0.0.5|104',
      DICOMWEB_pacs: 'http://pacs.example/dw',
    });
    assert.deepEqual(problems, [
      "DICOMWEB_pacs: the destination name 'pacs' is also a DICOM modality ('PACS'); rename one",
    ]);
  });
});

describe('forward step to a DICOMweb destination (fake server)', () => {
  const fakeOrthanc = (instances: { ID: string; sop: string }[]) =>
    ({
      listInstances: async () =>
        instances.map((i) => ({
          ID: i.ID,
          Type: 'Instance' as const,
          FileSize: 10,
          MainDicomTags: { SOPInstanceUID: i.sop },
          ParentSeries: 's',
        })),
      instanceFile: async (id: string) => Readable.from([Buffer.from(`bytes of ${id}`)]),
    }) as unknown as ForwardDeps['orthanc'];

  it('sends Orthanc originals, then only the refused ones on the next attempt, recorded as ranges on the job', async () => {
    const instances = Array.from({ length: 7 }, (_, i) => ({ ID: `id-${i}`, sop: `1.2.${i}` }));
    const calls: string[][] = [];
    let refuse = new Set(['1.2.2', '1.2.3', '1.2.6']);
    const stow = {
      store: async (parts: readonly { sopInstanceUid: string; bytes: Buffer }[]) => {
        calls.push(parts.map((p) => p.sopInstanceUid));
        for (const p of parts) assert.equal(p.bytes.toString(), `bytes of id-${p.sopInstanceUid.slice(4)}`);
        const failed = new Map(parts.filter((p) => refuse.has(p.sopInstanceUid)).map((p) => [p.sopInstanceUid, 'no']));
        return { stored: parts.map((p) => p.sopInstanceUid).filter((u) => !failed.has(u)), failed };
      },
    };
    const h = await forwardHarness({
      destinations: ['WEB'],
      forward: {
        orthanc: fakeOrthanc(instances),
        dicomweb: { WEB: stow },
        concurrency: 4,
        pollSeconds: 1,
        maxAttempts: 3,
      },
    });
    await h.run({ jobId: h.job.id, step: 'forward' });
    assert.deepEqual(await h.deliver(), ['retrying']);
    const state: DestinationState = destinationsOf(await h.stored()).WEB;
    assert.deepEqual(
      [state.status, state.retry, state.failed, state.sent, state.attempts],
      ['pending', '2-3,6', 3, 4, 1],
    );
    assert.match(state.error!, /^3 of 7 instances not stored: no$/);
    assert.equal(h.waiting()[0].visibleAt - h.clock.at, 1000);

    // The next attempt reads the ranges from the destination's record.
    refuse = new Set();
    calls.length = 0;
    assert.deepEqual(await h.deliverNext(), ['done']);
    assert.deepEqual(calls.flat().sort(), ['1.2.2', '1.2.3', '1.2.6'], 'only the refused ones again');
    const done = destinationsOf(await h.stored()).WEB;
    assert.deepEqual([done.status, done.retry, done.sent, done.total], ['sent', undefined, 7, 7]);
  });

  it('fails the job with the reason once the attempts are used up', async () => {
    const stow = { store: async () => ({ stored: [], failed: new Map([['1.2.0', 'HTTP 503']]) }) };
    const h = await forwardHarness({
      destinations: ['WEB'],
      forward: { orthanc: fakeOrthanc([{ ID: 'id-0', sop: '1.2.0' }]), dicomweb: { WEB: stow }, maxAttempts: 1 },
    });
    await h.run({ jobId: h.job.id, step: 'forward' });
    assert.deepEqual(await h.deliver(), ['failed']);
    assert.match(
      (await h.stored()).error ?? '',
      /^forward: destination WEB: 1 of 1 instances not stored: HTTP 503 \(after 1 attempts\)$/,
    );
  });
});

describe('Publish.Blob in a rule', () => {
  const rule = (extra: object, steps = ['download', 'zip']) =>
    parseRule('r', 'r.json', JSON.stringify({ CheckOn: 'Study', IsActive: true, Steps: steps, ...extra }));

  it('is parsed into the rule with a normalised prefix', () => {
    const { rule: parsed, problems } = rule({ Publish: { Blob: { Container: 'results', Prefix: '/mri/2026/' } } });
    assert.deepEqual(problems, []);
    assert.deepEqual(parsed?.publish, { blob: { container: 'results', prefix: 'mri/2026' } });
    assert.deepEqual(rule({ Publish: { Blob: { Container: 'abc' } } }).rule?.publish, {
      blob: { container: 'abc', prefix: '' },
    });
  });

  it('needs a zip step, a valid container name and a safe prefix', () => {
    const noZip = rule({ Publish: { Blob: { Container: 'results' } } }, ['download']);
    assert.equal(noZip.rule, undefined);
    assert.deepEqual(
      noZip.problems.map((p) => [p.path, p.severity]),
      [['Publish.Blob', 'error']],
    );
    assert.match(noZip.problems[0].message, /add 'zip' to Steps/);
    const bad = rule({ Publish: { Blob: { Container: 'Bad_Name', Prefix: 'a/../b' } } });
    assert.deepEqual(
      bad.problems.map((p) => p.path),
      ['Publish.Blob.Container', 'Publish.Blob.Prefix'],
    );
    assert.match(rule({ Publish: { Blob: { Container: 'ok-name', Extra: 1 } } }).problems[0].message, /Extra/);
  });

  it('strips any SAS from a recorded URL', () => {
    assert.equal(
      withoutCredentials('https://acct.blob.core.windows.net/c/a%20b.zip?sv=2022&sig=SECRET'),
      'https://acct.blob.core.windows.net/c/a%20b.zip',
    );
    assert.equal(blobNameFor({ container: 'c', prefix: '' }, 'x.zip'), 'x.zip');
    assert.equal(checkPrefix('ok/fine'), undefined);
    assert.match(checkPrefix('bad\\slash') ?? '', /backslash/);
  });
});
