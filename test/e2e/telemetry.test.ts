/**
 * Telemetry end to end: the function app, with APPLICATIONINSIGHTS_CONNECTION_STRING pointing at a
 * local HTTPS endpoint (the Azure Monitor exporter only speaks HTTPS; a certificate made here is
 * trusted through NODE_EXTRA_CA_CERTS), sends each step's outcome and duration, its metrics and the
 * failures, every item carrying the job id. The SDK's own statistics are switched off so nothing
 * leaves this machine.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy } from '../support/dicom';
import { makeTempDir, requireBinary, waitFor } from '../support/process';
import { startStack, type Stack } from './stack';

interface Envelope {
  name: string;
  data: { baseType: string; baseData: { name?: string; properties?: Record<string, string>; measurements?: Record<string, number>; metrics?: Array<{ name: string; value: number }>; exceptions?: Array<{ message: string }> } };
}

describe('telemetry to an Application Insights ingestion endpoint', { timeout: 300_000 }, () => {
  let stack: Stack;
  let server: Server;
  const received: Envelope[] = [];
  const paths = new Set<string>();

  before(async () => {
    const openssl = requireBinary('openssl', 'openssl');
    const dir = await makeTempDir('telemetry-');
    execFileSync(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    server = createServer({ key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) }, (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (c: Buffer) => chunks.push(c));
      request.on('end', () => {
        paths.add(request.url ?? '');
        let body = Buffer.concat(chunks);
        if (request.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const items = JSON.parse(body.toString('utf8')) as Envelope[];
        received.push(...items);
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const endpoint = `https://127.0.0.1:${port}/`;
    writeFileSync(path.join(dir, 'mapping.csv'), 'original,pseudonym\nNOT-THIS-PATIENT,S-1\n');
    stack = await startStack({
      env: {
        APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=11111111-2222-3333-4444-555555555555;IngestionEndpoint=${endpoint};LiveEndpoint=${endpoint}`,
        NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem'),
        APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true',
        APPLICATIONINSIGHTS_SDKSTATS_DISABLED: 'true',
      },
    });
    await stack.writeRule('telemetry_download', { CheckOn: 'Study', Action: 'DOWNLOAD', IsActive: true, Tags: [{ TagName: 'StudyDescription', Value: 'telemetry' }] });
    await stack.writeRule('telemetry_fails', { CheckOn: 'Study', IsActive: true, Steps: ['download', 'anonymise'], Anonymise: { Identity: 'mapping', MappingFile: 'mapping.csv' }, Tags: [{ TagName: 'StudyDescription', Value: 'telemetry' }] });
    writeFileSync(path.join(stack.rulesDir, 'mapping.csv'), readFileSync(path.join(dir, 'mapping.csv')));
  });
  after(async () => {
    await stack?.stop();
    server?.close();
  });

  it("sends every step's outcome, duration and counts, and the failures, with the job id", async () => {
    const study = await generateStudy({ patientID: 'TEL-1', patientName: 'Østergård^Åse', studyDescription: 'telemetry', series: [{ seriesNumber: 1, modality: 'MR', instances: 3 }, { seriesNumber: 2, modality: 'MR', instances: 1 }] });
    await stack.sendStudy(study);
    const id = await stack.studyId(study.studyInstanceUID);
    const jobs = await stack.waitForJobs(2, (j) => j.resourceId === id);
    const ok = jobs.find((j) => j.ruleId === 'telemetry_download') as Job;
    const bad = jobs.find((j) => j.ruleId === 'telemetry_fails') as Job;
    assert.equal(ok.status, 'succeeded');
    assert.equal(bad.status, 'failed');

    const stepEvents = (jobId: string) => received.filter((e) => e.data.baseType === 'EventData' && e.data.baseData.name === 'PipelineStep' && e.data.baseData.properties?.jobId === jobId);
    await waitFor(() => stepEvents(ok.id).length >= 2 && stepEvents(bad.id).length >= 1 && received.some((e) => e.data.baseType === 'ExceptionData'), {
      timeoutMs: 60_000,
      description: 'step events and the exception to arrive',
      onTimeout: () => `received: ${JSON.stringify(received.map((e) => [e.data.baseType, e.data.baseData.name, e.data.baseData.properties]))}`,
    });
    const okSteps = Object.fromEntries(stepEvents(ok.id).map((e) => [e.data.baseData.properties!.step, e.data.baseData]));
    assert.deepEqual(Object.keys(okSteps).sort(), ['download', 'publish']);
    assert.equal(okSteps.download.properties!.outcome, 'succeeded');
    assert.equal(okSteps.download.properties!.ruleId, 'telemetry_download');
    assert.equal(okSteps.download.measurements!.instances, 4);
    assert.ok(okSteps.download.measurements!.bytes > 4 * 256 * 256 * 2);
    assert.ok(okSteps.download.measurements!.duration_ms >= 0);

    const failedStep = stepEvents(bad.id)[0].data.baseData;
    assert.equal(failedStep.properties!.outcome, 'failed');
    const exception = received.find((e) => e.data.baseType === 'ExceptionData' && e.data.baseData.properties?.jobId === bad.id);
    assert.ok(exception, 'the failure arrives as an exception with the job id');
    assert.match(exception.data.baseData.exceptions![0].message, /identity mapping/);

    await waitFor(() => received.some((e) => e.data.baseType === 'MetricData' && e.data.baseData.metrics?.some((m) => m.name === 'pipeline.step.instances') && e.data.baseData.properties?.jobId === ok.id), { timeoutMs: 60_000, description: 'the instances metric of the job' });
    const text = JSON.stringify(received);
    for (const phi of [study.patientID, 'Østergård', study.studyInstanceUID]) assert.ok(!text.includes(phi), `telemetry carries no ${phi}`);
    assert.deepEqual([...paths], ['/v2.1/track']);
  });
});
