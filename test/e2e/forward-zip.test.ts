/**
 * Forward and zip end to end, with dcmtk's storescp as the receiving PACS: originals forwarded through
 * an Orthanc job, anonymised files through store-straight (never stored in Orthanc), a destination
 * that is down retried then failed with Orthanc's reason and successfully retried later, and zips
 * that pass `unzip -t` and match their manifest.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { resetForRetry } from '../../shared/pipeline/job';
import { QUEUES } from '../../shared/pipeline/messages';
import { readAll, sha256 } from '../support/bytes';
import { startStorescp, type Storescp } from '../support/dcmtk';
import { generateStudy } from '../support/dicom';
import { freePort, makeTempDir, requireBinary, waitFor } from '../support/process';
import { startStack, type Stack } from './stack';

const run = promisify(execFile);
const sopOf = (file: string) => path.basename(file).slice(path.basename(file).indexOf('.') + 1);

describe('forward and zip end to end', { timeout: 400_000 }, () => {
  let stack: Stack;
  let sink: Storescp;
  let second: Storescp;
  let downPort: number;

  before(async () => {
    sink = await startStorescp({ aet: 'SINK' });
    second = await startStorescp({ aet: 'SECOND' });
    downPort = await freePort();
    stack = await startStack({
      env: {
        // Seed 003's format for one destination, autorthanc's JSON for the other.
        MODALITY_SINK: `SINK|127.0.0.1|${sink.port}`,
        MODALITY_SECOND: `SECOND|127.0.0.1|${second.port}`,
        ORTHANC_DICOM_MODALITIES: JSON.stringify({ DOWN: ['LATER', '127.0.0.1', downPort] }),
        AUTOMATION_FORWARD_POLL_SECONDS: '1',
        AUTOMATION_FORWARD_MAX_ATTEMPTS: '3',
      },
    });
  });
  after(async () => {
    await stack?.stop();
    await sink?.stop();
    await second?.stop();
  });

  it('forwards the original study: every SOP Instance UID arrives (autorthanc FORWARD rule)', async () => {
    await stack.writeRule('to-sink', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'FORWARD',
      DestinationModality: 'SINK',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'forward original' }],
    });
    const study = await generateStudy({
      studyDescription: 'forward original',
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 3 },
        { seriesNumber: 2, modality: 'CT', instances: 2 },
      ],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'to-sink');
    assert.equal(job.status, 'succeeded', job.error);
    const expected = study.series.flatMap((s) => s.files.map((f) => f.sopInstanceUID)).sort();
    await waitFor(() => expected.every((uid) => sink.receivedFiles().some((f) => sopOf(f) === uid)), {
      timeoutMs: 10_000,
      description: 'every instance at storescp',
    });
    const status = (await (
      await fetch(`${stack.host.url}/api/status`, { headers: { 'x-functions-key': stack.functionKey } })
    ).json()) as { destinations: Record<string, { echo: string }> };
    assert.equal(status.destinations.SINK.echo, 'ok');
    assert.equal(status.destinations.DOWN.echo, 'failed');
  });

  it('forwards to several destinations of one rule, each tracked on the job', async () => {
    await stack.writeRule('to-both', {
      CheckOn: 'Study',
      Steps: ['forward'],
      Forward: { Destinations: ['SINK', 'SECOND'] },
      Tags: [{ TagName: 'StudyDescription', Value: 'forward twice' }],
    });
    const before = new Set(sink.receivedFiles());
    const study = await generateStudy({
      studyDescription: 'forward twice',
      series: [{ seriesNumber: 1, modality: 'CT', instances: 3 }],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'to-both');
    assert.equal(job.status, 'succeeded', job.error);
    const expected = study.series[0].files.map((f) => f.sopInstanceUID).sort();
    for (const [name, peer] of [
      ['SINK', sink],
      ['SECOND', second],
    ] as const) {
      await waitFor(
        () =>
          expected.every((uid) =>
            peer.receivedFiles().some((f) => !(peer === sink && before.has(f)) && sopOf(f) === uid),
          ),
        { timeoutMs: 10_000, description: `every instance at ${name}` },
      );
    }
    const destinations = job.steps.find((s) => s.name === 'forward')?.detail?.destinations as Record<
      string,
      { status: string; attempts: number }
    >;
    assert.deepEqual(Object.keys(destinations).sort(), ['SECOND', 'SINK']);
    for (const state of Object.values(destinations)) assert.equal(state.status, 'sent', JSON.stringify(destinations));
  });

  it('downloads, anonymises and forwards: nothing identifying arrives and Orthanc keeps no anonymised copy', async () => {
    await stack.writeRule('anon-forward', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise', 'forward'],
      Forward: { Destinations: ['SINK'] },
      Tags: [{ TagName: 'StudyDescription', Value: 'share anonymised' }],
    });
    const before = new Set(sink.receivedFiles());
    const studiesBefore = (await stack.client.listStudies({ since: 0, limit: 1000 })).length;
    const study = await generateStudy({
      patientID: 'PID-FWD-ANON',
      patientName: 'Nørgaard^Søren',
      patientBirthDate: '19480202',
      accessionNumber: 'ACC-FWD-1',
      studyID: 'STFWD0977',
      studyDescription: 'share anonymised',
      privateTags: true,
      nestedSequences: true,
      series: [{ seriesNumber: 1, modality: 'MR', instances: 4 }],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'anon-forward');
    assert.equal(job.status, 'succeeded', job.error);
    const arrived = sink.receivedFiles().filter((f) => !before.has(f));
    assert.equal(arrived.length, 4);
    // As the anonymise issue's PHI scan: names, IDs, dates, institution, physician, station, every UID.
    const identifiers = [
      'PID-FWD-ANON',
      'Nørgaard',
      'Søren',
      '19480202',
      'ACC-FWD-1',
      study.studyID,
      study.studyDate,
      'Klinikum',
      'Schäfer',
      'ACME-MR-01',
      study.studyInstanceUID,
      ...study.series.map((s) => s.seriesInstanceUID),
      ...study.series[0].files.map((f) => f.sopInstanceUID),
    ];
    for (const file of arrived) {
      const bytes = readFileSync(file);
      for (const id of identifiers) {
        assert.equal(bytes.indexOf(Buffer.from(id, 'utf8')), -1, `${path.basename(file)} carries ${id}`);
        assert.equal(bytes.indexOf(Buffer.from(id, 'latin1')), -1, `${path.basename(file)} carries ${id} (Latin-1)`);
      }
    }
    assert.equal(
      (await stack.client.listStudies({ since: 0, limit: 1000 })).length,
      studiesBefore + 1,
      'only the original study is in Orthanc',
    );
  });

  it("retries a destination that is down, fails with Orthanc's reason, and succeeds when retried after it is up", async () => {
    await stack.writeRule('to-down', {
      CheckOn: 'Study',
      Action: 'FORWARD',
      DestinationModality: 'DOWN',
      Tags: [{ TagName: 'StudyDescription', Value: 'destination down' }],
    });
    const study = await generateStudy({
      studyDescription: 'destination down',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 2 }],
    });
    await stack.sendStudy(study);
    const [failed] = await stack.waitForJobs(1, (j) => j.ruleId === 'to-down', { timeoutMs: 120_000 });
    assert.equal(failed.status, 'failed');
    assert.match(
      failed.error ?? '',
      /^forward: destination DOWN: .*(refused|Connection|association|DicomAssociation).*\(after 3 attempts\)/i,
    );

    const later = await startStorescp({ aet: 'LATER', port: downPort });
    try {
      const step = await stack.jobStore.update(failed.id, (j) => {
        resetForRetry(j);
      });
      await stack.queues.send(QUEUES.step(step.currentStep), { jobId: step.id, step: step.currentStep });
      await waitFor(async () => (await stack.jobStore.get(failed.id))?.status === 'succeeded', {
        timeoutMs: 60_000,
        description: 'the retried job to succeed',
      });
      await waitFor(() => later.receivedFiles().length === 2, {
        timeoutMs: 10_000,
        description: 'both instances at the destination',
      });
    } finally {
      await later.stop();
    }
  });

  it('zips a download: unzip -t passes, the manifest matches, files are byte-identical; no partial zip, no folder left', async () => {
    const unzip = requireBinary('unzip', 'unzip');
    await stack.writeRule('zipped', {
      CheckOn: 'Study',
      Steps: ['download', 'zip'],
      Zip: { Level: 1, KeepFolder: false },
      Tags: [{ TagName: 'StudyDescription', Value: 'zip it' }],
    });
    const study = await generateStudy({
      patientID: 'P-ZIP',
      studyID: '77',
      studyDescription: 'zip it',
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 3 },
        { seriesNumber: 2, modality: 'CT', instances: 2 },
      ],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'zipped');
    assert.equal(job.status, 'succeeded', job.error);
    const ruleFolder = path.join(stack.storageDir, 'zipped');
    const name = `P-ZIP-${study.patientName.split('^')[0]}-EX77`;
    assert.deepEqual(readdirSync(ruleFolder), [`${name}.zip`]);
    const zip = path.join(ruleFolder, `${name}.zip`);
    const { stdout } = await run(unzip, ['-t', zip]);
    assert.match(stdout, /No errors detected/);
    const out = makeTempDir('unzipped-');
    await run(unzip, ['-q', zip, '-d', out]);
    const manifest = JSON.parse(readFileSync(path.join(out, name, 'MANIFEST.json'), 'utf8')) as {
      files: Array<{ path: string; size: number; sha256: string }>;
      series: Record<string, number>;
      totals: { files: number };
    };
    assert.equal(manifest.totals.files, 5);
    const unpacked = (readdirSync(out, { recursive: true }) as string[])
      .filter((f) => statSync(path.join(out, f)).isFile())
      .map((f) => f.split(path.sep).join('/'))
      .sort();
    assert.deepEqual(
      unpacked,
      [...manifest.files.map((f) => f.path), `${name}/MANIFEST.json`].sort(),
      'the zip holds exactly the files of its manifest',
    );
    assert.deepEqual(Object.values(manifest.series).sort(), [2, 3]);
    for (const entry of manifest.files) {
      const bytes = readFileSync(path.join(out, entry.path));
      assert.equal(bytes.length, entry.size);
      assert.equal(sha256(bytes), entry.sha256, `${entry.path} matches the manifest`);
      const sop = path.basename(entry.path, '.dcm');
      const instance = (await stack.client.lookup(sop)).find((r) => r.Type === 'Instance');
      assert.ok(instance);
      assert.equal(
        sha256(bytes),
        sha256(await readAll(await stack.client.instanceFile(instance.ID))),
        `${entry.path} is byte-identical to Orthanc's copy`,
      );
    }
  });
});
