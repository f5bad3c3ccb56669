/**
 * DICOMweb destinations and Blob publishing end to end. The receiving server is a second real Orthanc
 * with Debian's orthanc-dicomweb plugin, reached by STOW-RS with basic credentials from
 * DICOMWEB_<NAME>_USERNAME/_PASSWORD:
 * - originals fetched from Orthanc arrive complete and byte-identical;
 * - a pipeline's files (download + zip, folder kept) arrive byte-identical to the published files, and
 *   the zip lands in Azurite's blob container byte-identical to the local one, the job holding its URL;
 * - a server that refuses some instances (a loopback proxy answering a FailedSOPSequence for them the
 *   first time, passing the rest to the real Orthanc) gets exactly those again, and the job succeeds.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { multipartBody, sopInstanceUidOf } from '../../shared/dicomweb/stow';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { readAll, sha256 } from '../support/bytes';
import { generateStudy } from '../support/dicom';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { startStack, type Stack } from './stack';

/** The parts of a multipart/related body (each part's bytes after its headers). */
function partsOf(body: Buffer, contentType: string): Buffer[] {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  assert.ok(boundary, `no boundary in ${contentType}`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const parts: Buffer[] = [];
  const text = Buffer.concat([Buffer.from('\r\n'), body]);
  let at = text.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (text.subarray(start, start + 2).toString() === '--') break;
    const next = text.indexOf(delimiter, start);
    const part = text.subarray(start + 2, next);
    parts.push(part.subarray(part.indexOf('\r\n\r\n') + 4));
    at = next;
  }
  return parts;
}

/**
 * A STOW-RS front of the peer that refuses each SOP Instance UID in `refuse` the first time it sees it
 * (FailedSOPSequence, FailureReason A700) and passes everything else to the real Orthanc.
 */
async function startRefusingProxy(
  peer: OrthancServer,
  refuse: Set<string>,
): Promise<{ url: string; seen: Map<string, number>; close(): Promise<void> }> {
  const seen = new Map<string, number>();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      void (async () => {
        const parts = partsOf(Buffer.concat(chunks), request.headers['content-type'] ?? '');
        const refused: string[] = [];
        const passed: Buffer[] = [];
        for (const part of parts) {
          const uid = sopInstanceUidOf(part);
          seen.set(uid, (seen.get(uid) ?? 0) + 1);
          if (refuse.has(uid) && seen.get(uid) === 1) refused.push(uid);
          else passed.push(part);
        }
        let answer: Record<string, { vr: string; Value: unknown[] }> = {};
        if (passed.length > 0) {
          const { body, contentType } = multipartBody(passed);
          const upstream = await fetch(`${peer.url}/dicom-web${request.url!.replace(/^\/dicom-web/, '')}`, {
            method: 'POST',
            headers: {
              'Content-Type': contentType,
              Accept: 'application/dicom+json',
              Authorization: request.headers.authorization ?? '',
            },
            body,
          });
          answer = (await upstream.json()) as typeof answer;
        }
        if (refused.length > 0)
          answer['00081198'] = {
            vr: 'SQ',
            Value: refused.map((uid) => ({
              '00081155': { vr: 'UI', Value: [uid] },
              '00081197': { vr: 'US', Value: [0xa700] },
            })),
          };
        response.writeHead(refused.length > 0 ? 202 : 200, { 'Content-Type': 'application/dicom+json' });
        response.end(JSON.stringify(answer));
      })().catch((error: Error) => {
        response.writeHead(500);
        response.end(error.message);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/dicom-web`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const PEER_PASSWORD_MARK = 'orthanc-test-password';

describe('DICOMweb destinations and Blob publish end to end', { timeout: 400_000 }, () => {
  let peer: OrthancServer;
  let peerClient: OrthancClient;
  let proxy: Awaited<ReturnType<typeof startRefusingProxy>>;
  let stack: Stack;
  const refuse = new Set<string>();

  before(async () => {
    peer = await startOrthanc({ dicomWeb: true, aet: 'PEERWEB' });
    peerClient = createOrthancClient({ url: peer.url, username: peer.username, password: peer.password });
    proxy = await startRefusingProxy(peer, refuse);
    stack = await startStack({
      env: {
        DICOMWEB_PEER: `${peer.url}/dicom-web`,
        DICOMWEB_PEER_USERNAME: peer.username,
        DICOMWEB_PEER_PASSWORD: peer.password,
        DICOMWEB_FLAKY: proxy.url,
        DICOMWEB_FLAKY_USERNAME: peer.username,
        DICOMWEB_FLAKY_PASSWORD: peer.password,
        AUTOMATION_FORWARD_POLL_SECONDS: '1',
        AUTOMATION_FORWARD_MAX_ATTEMPTS: '3',
      },
    });
  });
  after(async () => {
    await stack?.stop();
    await proxy?.close();
    await peer?.stop();
  });

  /** The peer's stored bytes of an instance, by SOP Instance UID. */
  const peerFile = async (uid: string): Promise<Buffer> => {
    const found = (await peerClient.lookup(uid)).find((r) => r.Type === 'Instance');
    assert.ok(found, `instance ${uid} is at the peer`);
    return readAll(await peerClient.instanceFile(found.ID));
  };

  it("forwards Orthanc's originals by STOW-RS: every instance arrives byte-identical; the status report shows the destination without credentials", async () => {
    await stack.writeRule('web-original', {
      CheckOn: 'Study',
      Steps: ['forward'],
      Forward: { Destinations: ['PEER'] },
      Tags: [{ TagName: 'StudyDescription', Value: 'stow original' }],
    });
    const study = await generateStudy({
      studyDescription: 'stow original',
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 4 },
        { seriesNumber: 2, modality: 'CT', instances: 3 },
      ],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'web-original');
    assert.equal(job.status, 'succeeded', job.error);
    const state = (job.steps.find((s) => s.name === 'forward')?.detail?.destinations as Record<string, unknown>)
      .PEER as { status: string; sent: number; total: number };
    assert.deepEqual([state.status, state.sent, state.total], ['sent', 7, 7]);
    for (const file of study.series.flatMap((s) => s.files)) {
      const source = (await stack.client.lookup(file.sopInstanceUID)).find((r) => r.Type === 'Instance');
      assert.ok(source);
      const sent = await readAll(await stack.client.instanceFile(source.ID));
      assert.equal(sha256(await peerFile(file.sopInstanceUID)), sha256(sent), `${file.sopInstanceUID} byte-identical`);
    }

    const response = await fetch(`${stack.host.url}/api/status`, {
      headers: { 'x-functions-key': stack.functionKey },
    });
    const text = await response.text();
    const status = JSON.parse(text) as { dicomweb: Record<string, { url: string; reachable: boolean }> };
    assert.deepEqual(status.dicomweb.PEER, { url: `${peer.url}/dicom-web`, reachable: true, status: 200 });
    assert.ok(!text.includes(PEER_PASSWORD_MARK), 'no credential in the status report');
    assert.ok(!stack.host.logs().includes(PEER_PASSWORD_MARK), 'no credential in the logs');
  });

  it("forwards a pipeline's files by STOW-RS and uploads its zip to Blob storage byte-identical, the job holding the URL", async () => {
    await stack.writeRule('web-zip-blob', {
      CheckOn: 'Study',
      Steps: ['download', 'zip', 'forward'],
      Zip: { Level: 1, KeepFolder: true },
      Forward: { Destinations: ['PEER'] },
      Publish: { Blob: { Container: 'results', Prefix: 'e2e/zips' } },
      Tags: [{ TagName: 'StudyDescription', Value: 'stow files' }],
    });
    const study = await generateStudy({
      patientID: 'P-BLOB',
      studyID: '88',
      studyDescription: 'stow files',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 5 }],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'web-zip-blob');
    assert.equal(job.status, 'succeeded', job.error);

    const ruleFolder = path.join(stack.storageDir, 'web-zip-blob');
    const name = `P-BLOB-${study.patientName.split('^')[0]}-EX88`;
    const folder = path.join(ruleFolder, name);
    const files = (readdirSync(folder, { recursive: true }) as string[])
      .map((f) => path.join(folder, f))
      .filter((f) => f.endsWith('.dcm') && statSync(f).isFile());
    assert.equal(files.length, 5);
    for (const file of files) {
      const bytes = readFileSync(file);
      assert.equal(sha256(await peerFile(sopInstanceUidOf(bytes))), sha256(bytes), `${path.basename(file)} as sent`);
    }

    const zip = readFileSync(path.join(ruleFolder, `${name}.zip`));
    const blob = job.steps.find((s) => s.name === 'publish')?.detail?.blob as { url: string; sha256: string };
    assert.ok(blob, JSON.stringify(job.steps.find((s) => s.name === 'publish')?.detail));
    assert.equal(
      blob.url,
      `http://127.0.0.1:${stack.azurite.blobPort}/devstoreaccount1/results/e2e/zips/${encodeURIComponent(`${name}.zip`)}`,
    );
    assert.equal(blob.sha256, sha256(zip));
    const container = BlobServiceClient.fromConnectionString(stack.azurite.connectionString).getContainerClient(
      'results',
    );
    const stored = await readAll(
      (await container.getBlobClient(`e2e/zips/${name}.zip`).download()).readableStreamBody!,
    );
    assert.ok(stored.equals(zip), 'the blob is byte-identical to the local zip');
    assert.equal((await container.getBlobClient(`e2e/zips/${name}.zip`).getProperties()).metadata?.sha256, sha256(zip));
    assert.ok(
      await container.getBlobClient(`e2e/zips/${name}.zip.manifest.json`).exists(),
      'the manifest is beside it',
    );
  });

  it('sends again exactly the instances a server refused, and succeeds', async () => {
    await stack.writeRule('web-flaky', {
      CheckOn: 'Study',
      Steps: ['forward'],
      Forward: { Destinations: ['FLAKY'] },
      Tags: [{ TagName: 'StudyDescription', Value: 'stow refused' }],
    });
    const study = await generateStudy({
      studyDescription: 'stow refused',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 6 }],
    });
    const uids = study.series[0].files.map((f) => f.sopInstanceUID);
    refuse.add(uids[1]).add(uids[4]);
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'web-flaky');
    assert.equal(job.status, 'succeeded', job.error);
    const state = (job.steps.find((s) => s.name === 'forward')?.detail?.destinations as Record<string, unknown>)
      .FLAKY as { status: string; attempts: number; sent: number; retry?: string };
    assert.equal(state.status, 'sent');
    assert.equal(state.attempts, 2, 'one attempt refused in part, then the retry');
    assert.equal(state.sent, 6);
    assert.equal(state.retry, undefined);
    for (const uid of uids) {
      assert.equal(proxy.seen.get(uid), refuse.has(uid) ? 2 : 1, `${uid} sent ${refuse.has(uid) ? 'twice' : 'once'}`);
      const source = (await stack.client.lookup(uid)).find((r) => r.Type === 'Instance');
      assert.ok(source);
      assert.equal(
        sha256(await peerFile(uid)),
        sha256(await readAll(await stack.client.instanceFile(source.ID))),
        `${uid} arrived byte-identical`,
      );
    }
    assert.match(stack.host.logs(), /forward to FLAKY failed \(attempt 1 of 3\).*2 of 6 instances not stored/);
  });
});
