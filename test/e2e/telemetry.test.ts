/**
 * Telemetry end to end: the function app, with APPLICATIONINSIGHTS_CONNECTION_STRING pointing at a
 * local HTTPS endpoint (the Azure Monitor exporter only speaks HTTPS; a certificate made here is
 * trusted through NODE_EXTRA_CA_CERTS), sends each step's outcome and duration, its metrics and the
 * failures, every item carrying the job id. The SDK's own statistics are switched off so nothing
 * leaves this machine.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy } from '../support/dicom';
import { makeTempDir, waitFor } from '../support/process';
import { startStack, type Stack } from './stack';
import { startIngestion, type Ingestion } from '../support/ingestion';

interface Envelope {
  name: string;
  data: {
    baseType: string;
    baseData: {
      name?: string;
      properties?: Record<string, string>;
      measurements?: Record<string, number>;
      metrics?: Array<{ name: string; value: number }>;
      exceptions?: Array<{ message: string }>;
    };
  };
}

describe('telemetry to an Application Insights ingestion endpoint', { timeout: 300_000 }, () => {
  let stack: Stack;
  let ingestion: Ingestion<Envelope>;

  before(async () => {
    ingestion = await startIngestion<Envelope>();
    const dir = makeTempDir('telemetry-');
    writeFileSync(path.join(dir, 'mapping.csv'), 'original,pseudonym\nNOT-THIS-PATIENT,S-1\n');
    stack = await startStack({
      env: ingestion.env,
    });
    await stack.writeRule('telemetry_download', {
      CheckOn: 'Study',
      Action: 'DOWNLOAD',
      IsActive: true,
      Tags: [{ TagName: 'StudyDescription', Value: 'telemetry' }],
    });
    await stack.writeRule('telemetry_fails', {
      CheckOn: 'Study',
      IsActive: true,
      Steps: ['download', 'anonymise'],
      Anonymise: { Identity: 'mapping', MappingFile: 'mapping.csv' },
      Tags: [{ TagName: 'StudyDescription', Value: 'telemetry' }],
    });
    writeFileSync(path.join(stack.rulesDir, 'mapping.csv'), readFileSync(path.join(dir, 'mapping.csv')));
  });
  after(async () => {
    await stack?.stop();
    ingestion?.stop();
  });

  it("sends every step's outcome, duration and counts, and the failures, with the job id", async () => {
    const study = await generateStudy({
      patientID: 'TEL-1',
      patientName: 'Østergård^Åse',
      studyDescription: 'telemetry',
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 3 },
        { seriesNumber: 2, modality: 'MR', instances: 1 },
      ],
    });
    await stack.sendStudy(study);
    const id = await stack.studyId(study.studyInstanceUID);
    const jobs = await stack.waitForJobs(2, (j) => j.resourceId === id);
    const ok = jobs.find((j) => j.ruleId === 'telemetry_download') as Job;
    const bad = jobs.find((j) => j.ruleId === 'telemetry_fails') as Job;
    assert.equal(ok.status, 'succeeded');
    assert.equal(bad.status, 'failed');

    const stepEvents = (jobId: string) =>
      ingestion.received.filter(
        (e) =>
          e.data.baseType === 'EventData' &&
          e.data.baseData.name === 'PipelineStep' &&
          e.data.baseData.properties?.jobId === jobId,
      );
    await waitFor(
      () =>
        stepEvents(ok.id).length >= 2 &&
        stepEvents(bad.id).length >= 1 &&
        ingestion.received.some((e) => e.data.baseType === 'ExceptionData'),
      {
        timeoutMs: 60_000,
        description: 'step events and the exception to arrive',
        onTimeout: () =>
          `ingestion.received: ${JSON.stringify(ingestion.received.map((e) => [e.data.baseType, e.data.baseData.name, e.data.baseData.properties]))}`,
      },
    );
    const okSteps = Object.fromEntries(
      stepEvents(ok.id).map((e) => [e.data.baseData.properties!.step, e.data.baseData]),
    );
    assert.deepEqual(Object.keys(okSteps).sort(), ['download', 'publish']);
    assert.equal(okSteps.download.properties!.outcome, 'succeeded');
    assert.equal(okSteps.download.properties!.ruleId, 'telemetry_download');
    assert.equal(okSteps.download.measurements!.instances, 4);
    assert.ok(okSteps.download.measurements!.bytes > 4 * 256 * 256 * 2);
    assert.ok(okSteps.download.measurements!.duration_ms >= 0);

    const failedStep = stepEvents(bad.id)[0].data.baseData;
    assert.equal(failedStep.properties!.outcome, 'failed');
    const exception = ingestion.received.find(
      (e) => e.data.baseType === 'ExceptionData' && e.data.baseData.properties?.jobId === bad.id,
    );
    assert.ok(exception, 'the failure arrives as an exception with the job id');
    assert.match(exception.data.baseData.exceptions![0].message, /identity mapping/);

    await waitFor(
      () =>
        ingestion.received.some(
          (e) =>
            e.data.baseType === 'MetricData' &&
            e.data.baseData.metrics?.some((m) => m.name === 'pipeline.step.instances') &&
            e.data.baseData.properties?.jobId === ok.id,
        ),
      { timeoutMs: 60_000, description: 'the instances metric of the job' },
    );
    const text = JSON.stringify(ingestion.received);
    for (const phi of [study.patientID, 'Østergård', study.studyInstanceUID])
      assert.ok(!text.includes(phi), `telemetry carries no ${phi}`);
    assert.deepEqual([...ingestion.paths], ['/v2.1/track']);
  });
});
