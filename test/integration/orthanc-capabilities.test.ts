/**
 * What the app uses of Orthanc 1.12 only when Orthanc reports it, against the real Orthanc of this run
 * (ORTHANC_FLAVOUR: Debian 12's 1.10.1 or Debian 13's 1.12.7), with SQLite and with PostgreSQL as index:
 * - labels on processed studies (`automation-<rule>`), absent without error where Orthanc has none;
 * - the change feed asking for stable changes only where /system reports HasExtendedChanges.
 * Each test asserts according to the version Orthanc reports, so both legs run the same file.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { QueueServiceClient } from '@azure/storage-queue';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { capabilitiesOf, orthancVersionAtLeast } from '../../shared/orthanc/capabilities';
import type { OrthancChanges } from '../../shared/orthanc/schemas';
import { pollChangeFeed } from '../../shared/pipeline/changeFeed';
import { QUEUES } from '../../shared/pipeline/messages';
import { labelProcessedStudy, ruleLabel } from '../../shared/pipeline/studyLabels';
import { openTableStorage } from '../../shared/storage/tableStorage';
import { createQueueSender } from '../../shared/storage/queues';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { storescu } from '../support/dcmtk';
import { generateStudy } from '../support/dicom';
import { startOrthanc, waitForStableStudy, type OrthancServer } from '../support/orthanc';
import { startPostgres, type PostgresServer } from '../support/postgres';
import type { Logger } from '../../shared/vocabulary';

const STABLE = new Set(['StableStudy', 'StableSeries']);

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

for (const index of ['SQLite', 'PostgreSQL'] as const) {
  describe(`Orthanc's newer features, used when reported (index: ${index})`, { timeout: 120_000 }, () => {
    let azurite: AzuriteServer;
    let postgres: PostgresServer | undefined;
    let orthanc: OrthancServer;
    let client: OrthancClient;

    before(async () => {
      azurite = await startAzurite();
      if (index === 'PostgreSQL') postgres = await startPostgres();
      orthanc = await startOrthanc({ stableAgeSeconds: 1, postgres });
      client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
    });
    after(async () => {
      await orthanc?.stop();
      await postgres?.stop();
      await azurite?.stop();
    });

    it('reads labels and the typed change feed from /system according to the version', async (t) => {
      const system = await client.system();
      const capabilities = await client.capabilities();
      t.diagnostic(`Orthanc ${orthanc.version} (${index}): ${JSON.stringify(capabilities)}`);
      assert.equal(capabilities.version, orthanc.version);
      assert.deepEqual(capabilities, capabilitiesOf(system));
      if (orthancVersionAtLeast(orthanc.version, [1, 12, 0])) {
        // Both of Debian 13's index back-ends (SQLite, orthanc-postgresql 5) have labels.
        assert.equal(capabilities.labels, true, `Orthanc ${orthanc.version} (${index}) reports HasLabels`);
      } else {
        assert.deepEqual(capabilities, { version: orthanc.version, labels: false, extendedChanges: false });
      }
      if (index === 'SQLite' && orthancVersionAtLeast(orthanc.version, [1, 12, 5]))
        assert.equal(capabilities.extendedChanges, true, 'SQLite has the extended /changes from 1.12.5');
    });

    it('labels the study of a succeeded job (also through a series job) where Orthanc has labels, and writes nothing where it has none', async () => {
      const study = await generateStudy({
        patientID: `CAP-${index}`,
        series: [
          { seriesNumber: 1, modality: 'MR', instances: 1 },
          { seriesNumber: 2, modality: 'MR', instances: 1 },
        ],
      });
      await storescu(study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet });
      const studyId = await waitForStableStudy(orthanc, study.studyInstanceUID);
      const seriesId = (await client.getStudy(studyId)).Series[0];
      const log = recordingLog();
      const deps = { orthanc: client, log };
      const studyJob = {
        id: 'job-1',
        ruleId: 'brain',
        status: 'succeeded',
        level: 'Study',
        resourceId: studyId,
      } as const;
      const seriesJob = {
        ...studyJob,
        id: 'job-2',
        ruleId: 'T1 series.v2',
        level: 'Series',
        resourceId: seriesId,
      } as const;
      const failedJob = { ...studyJob, id: 'job-3', ruleId: 'failed-rule', status: 'failed' } as const;

      const outcomes = [
        await labelProcessedStudy(deps, studyJob),
        await labelProcessedStudy(deps, seriesJob),
        await labelProcessedStudy(deps, failedJob),
      ];
      const answer = (await client.raw<Record<string, unknown>>('GET', `/studies/${studyId}`)).data;
      if ((await client.capabilities()).labels) {
        assert.deepEqual(outcomes, ['labelled', 'labelled', 'skipped']);
        assert.match(ruleLabel('T1 series.v2'), /^automation-T1_series_v2-[0-9a-f]{8}$/);
        assert.deepEqual(
          (await client.labels('studies', studyId)).sort(),
          ['automation-brain', ruleLabel('T1 series.v2')].sort(),
        );
        assert.deepEqual(answer.Labels, await client.labels('studies', studyId));
        assert.deepEqual(await client.labels('series', seriesId), [], 'the study carries the label, not the series');
        // Labelling again (a redelivered message) changes nothing.
        assert.equal(await labelProcessedStudy(deps, studyJob), 'labelled');
        assert.equal((await client.labels('studies', studyId)).length, 2);
      } else {
        assert.deepEqual(outcomes, ['unsupported', 'unsupported', 'skipped']);
        assert.equal(answer.Labels, undefined, `Orthanc ${orthanc.version} has no labels on its studies`);
      }
      assert.deepEqual(log.lines, [], 'no warning either way');
    });

    it('enqueues each stable study and series once from /changes, asking only for stable changes where Orthanc can filter', async () => {
      const storage = await openTableStorage(azurite.connectionString);
      const queues = createQueueSender(azurite.connectionString);
      const pages: OrthancChanges[] = [];
      // The real client, with every page it got kept to see what crossed the wire.
      const watched = {
        ...client,
        changes: async (page: Parameters<OrthancClient['changes']>[0]) => {
          const answer = await client.changes(page);
          pages.push(answer);
          return answer;
        },
      };
      const deps = { orthanc: watched, cursors: storage.cursors, queues, log: recordingLog(), batchSize: 3 };
      // What the previous test stored, then one more study.
      const first = await pollChangeFeed(deps);
      const study = await generateStudy({
        patientID: `FEED-${index}`,
        series: [
          { seriesNumber: 1, modality: 'CT', instances: 2 },
          { seriesNumber: 2, modality: 'CT', instances: 1 },
        ],
      });
      await storescu(study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet });
      const studyId = await waitForStableStudy(orthanc, study.studyInstanceUID);
      const series = (await client.getStudy(studyId)).Series;
      const second = await pollChangeFeed(deps);
      const third = await pollChangeFeed(deps);

      assert.equal(first.enqueued, 3, 'the first study and its two series');
      assert.equal(second.enqueued, 3, 'the new study and its two series, once');
      assert.equal(third.enqueued, 0, 'nothing twice');
      assert.ok(third.cursor >= second.cursor);
      const peeked = await QueueServiceClient.fromConnectionString(azurite.connectionString)
        .getQueueClient(QUEUES.evaluate)
        .peekMessages({ numberOfMessages: 32 });
      const messages = peeked.peekedMessageItems.map(
        (m) =>
          JSON.parse(Buffer.from(m.messageText, 'base64').toString('utf8')) as { level: string; resourceId: string },
      );
      assert.equal(messages.length, 6);
      assert.deepEqual(
        messages
          .slice(3)
          .map((m) => `${m.level}:${m.resourceId}`)
          .sort(),
        [`Study:${studyId}`, ...series.map((s) => `Series:${s}`)].sort(),
      );
      const crossed = pages.flatMap((p) => p.Changes.map((c) => c.ChangeType));
      if ((await client.capabilities()).extendedChanges) {
        assert.ok(
          crossed.length > 0 && crossed.every((t) => STABLE.has(t)),
          `only stable changes: ${crossed.join(',')}`,
        );
      } else {
        assert.ok(crossed.includes('NewInstance'), 'an Orthanc without the typed feed sends every change');
      }
    });
  });
}
