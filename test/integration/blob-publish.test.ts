/**
 * Publish.Blob against a real Azurite: the uploaded blob is byte-identical to the local zip and carries
 * its SHA-256; a repeat is a no-op; an upload killed mid-way (a child process, SIGKILL after some
 * blocks) leaves no blob under the final name, nor disturbs an earlier one, and the next attempt
 * completes it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { publishZipToBlob } from '../../shared/blob/publish';
import { readAll, sha256 } from '../support/bytes';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { makeTempDir, waitFor } from '../support/process';

const REPO = path.resolve(__dirname, '../..');

describe('Publish.Blob to Azurite', { timeout: 120_000 }, () => {
  let azurite: AzuriteServer;
  let service: BlobServiceClient;
  const dir = makeTempDir('blob-publish-');

  before(async () => {
    azurite = await startAzurite();
    service = BlobServiceClient.fromConnectionString(azurite.connectionString);
  });
  after(async () => {
    await azurite?.stop();
  });

  const download = async (container: string, name: string) =>
    readAll((await service.getContainerClient(container).getBlobClient(name).download()).readableStreamBody!);

  it('uploads the zip byte for byte with its SHA-256, a manifest beside it, and a URL without credentials', async () => {
    const zip = path.join(dir, 'P1-DOE-EX1.zip');
    const bytes = randomBytes(5 * 1024 * 1024 + 123);
    writeFileSync(zip, bytes);
    const result = await publishZipToBlob(service, { container: 'results', prefix: 'mri/2026' }, zip, {
      blockBytes: 1024 * 1024,
      manifest: { jobId: 'j1' },
    });
    assert.equal(result.outcome, 'uploaded');
    assert.equal(result.sha256, sha256(bytes));
    assert.equal(result.url, `http://127.0.0.1:${azurite.blobPort}/devstoreaccount1/results/mri/2026/P1-DOE-EX1.zip`);
    const stored = await download('results', 'mri/2026/P1-DOE-EX1.zip');
    assert.ok(stored.equals(bytes), 'the blob is byte-identical to the local zip');
    const properties = await service
      .getContainerClient('results')
      .getBlobClient('mri/2026/P1-DOE-EX1.zip')
      .getProperties();
    assert.equal(properties.metadata?.sha256, sha256(bytes));
    assert.equal(properties.contentType, 'application/zip');
    const manifest = JSON.parse((await download('results', 'mri/2026/P1-DOE-EX1.zip.manifest.json')).toString()) as {
      sha256: string;
      bytes: number;
      jobId: string;
    };
    assert.deepEqual([manifest.sha256, manifest.bytes, manifest.jobId], [sha256(bytes), bytes.length, 'j1']);

    const again = await publishZipToBlob(service, { container: 'results', prefix: 'mri/2026' }, zip);
    assert.equal(again.outcome, 'already-uploaded', 'a retry after a crash past the commit uploads nothing');
  });

  it('a crash mid-upload leaves no blob under the final name (and an earlier one intact); the next attempt completes it', async () => {
    const container = service.getContainerClient('crash');
    const zip = path.join(dir, 'CRASH-EX2.zip');
    const old = randomBytes(1000);
    const bytes = randomBytes(4 * 1024 * 1024);
    writeFileSync(zip, bytes);

    for (const earlier of [undefined, old]) {
      const name = earlier ? 'replace/CRASH-EX2.zip' : 'fresh/CRASH-EX2.zip';
      if (earlier) {
        await container.createIfNotExists();
        await container.getBlockBlobClient(name).upload(earlier, earlier.length);
      }
      // A separate process uploads in 64 KiB blocks, slowly, and is killed once some blocks are staged.
      const script = `
        const { BlobServiceClient } = require('@azure/storage-blob');
        const { publishZipToBlob } = require(${JSON.stringify(path.join(REPO, 'shared/blob/publish.ts'))});
        const service = BlobServiceClient.fromConnectionString(process.env.CONN);
        publishZipToBlob(service, { container: 'crash', prefix: ${JSON.stringify(path.dirname(name))} }, process.env.ZIP, {
          blockBytes: 64 * 1024, concurrency: 2, afterBlock: () => new Promise((r) => setTimeout(r, 40)),
        }).then(() => console.log('finished'));
      `;
      const child = spawn(process.execPath, ['--import', 'tsx', '--eval', script], {
        cwd: REPO,
        env: { ...process.env, CONN: azurite.connectionString, ZIP: zip },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      const blob = container.getBlockBlobClient(name);
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`the uploader exited early:\n${output}`);
          const list = await blob.getBlockList('uncommitted').catch(() => undefined);
          return (list?.uncommittedBlocks?.length ?? 0) >= 5;
        },
        { timeoutMs: 30_000, intervalMs: 20, description: 'some blocks staged by the child' },
      );
      child.kill('SIGKILL');
      await exited;
      assert.ok(!output.includes('finished'), 'the upload was interrupted before its commit');
      const staged = (await blob.getBlockList('uncommitted')).uncommittedBlocks?.length ?? 0;
      assert.ok(staged > 0 && staged < 64, `part of the blocks were staged (${staged} of 64)`);

      const listed: string[] = [];
      for await (const item of container.listBlobsFlat({ prefix: path.dirname(name) })) listed.push(item.name);
      if (earlier) {
        assert.deepEqual(listed, [name], 'only the earlier blob is listed');
        assert.ok((await download('crash', name)).equals(earlier), 'the earlier blob is untouched');
      } else {
        assert.deepEqual(listed, [], 'nothing is listed under the prefix');
        assert.equal(await blob.exists(), false, 'no blob under the final name');
      }

      const result = await publishZipToBlob(service, { container: 'crash', prefix: path.dirname(name) }, zip, {
        blockBytes: 64 * 1024,
      });
      assert.equal(result.outcome, 'uploaded');
      assert.ok((await download('crash', name)).equals(bytes), 'the retried upload is byte-identical');
      assert.equal((await blob.getProperties()).metadata?.sha256, sha256(bytes));
    }
  });
});
