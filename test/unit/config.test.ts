import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ENVIRONMENT_VARIABLES, loadConfig } from '../../shared/config';
import { problemsFor } from '../support/config';

describe('config', () => {
  it('applies autorthanc-compatible defaults to an empty environment', () => {
    const config = loadConfig({});
    assert.equal(config.orthanc.url, 'http://127.0.0.1:8042');
    assert.equal(config.orthanc.stableAgeSeconds, 300);
    assert.equal(config.rulesPath, path.resolve('automation/rules'));
    assert.equal(config.storagePath, path.resolve('automation/storage'));
    assert.equal(config.owner, undefined);
    assert.equal(config.logPhi, false);
    assert.deepEqual(config.modalities, {});
  });

  it('reads the autorthanc variable names', () => {
    const config = loadConfig({
      ORTHANC_HTTP_PORT: '18042',
      ORTHANC_STABLE_AGE: '5',
      ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: '/srv/rules',
      ORTHANC_AUTOMATION_STORAGE_PATH: '/srv/out',
      UID: '1000',
      GID: '1001',
      ORTHANC_DICOM_MODALITIES: '{"PACS": ["PACSAET", "10.0.0.5", 104]}',
      MODALITY_WORKSTATION: 'WS1|192.168.1.100|4242',
    });
    assert.equal(config.orthanc.url, 'http://127.0.0.1:18042');
    assert.equal(config.orthanc.stableAgeSeconds, 5);
    assert.equal(config.rulesPath, '/srv/rules');
    assert.equal(config.storagePath, '/srv/out');
    assert.deepEqual(config.owner, { uid: 1000, gid: 1001 });
    assert.deepEqual(config.modalities, {
      PACS: { AET: 'PACSAET', Host: '10.0.0.5', Port: 104 },
      WORKSTATION: { AET: 'WS1', Host: '192.168.1.100', Port: 4242 },
    });
  });

  const badValues: Array<[string, NodeJS.ProcessEnv]> = [
    ['ORTHANC_HTTP_PORT', { ORTHANC_HTTP_PORT: '70000' }],
    ['ORTHANC_HTTP_PORT', { ORTHANC_HTTP_PORT: 'eighty' }],
    ['ORTHANC_STABLE_AGE', { ORTHANC_STABLE_AGE: '0' }],
    ['ORTHANC_STABLE_AGE', { ORTHANC_STABLE_AGE: '2.5' }],
    ['ORTHANC_AET_NAME', { ORTHANC_AET_NAME: 'A_TITLE_THAT_IS_FAR_TOO_LONG' }],
    ['ORTHANC_AET_PORT', { ORTHANC_AET_PORT: '-1' }],
    ['ORTHANC_DICOM_MODALITIES', { ORTHANC_DICOM_MODALITIES: '{not json' }],
    ['ORTHANC_DICOM_MODALITIES', { ORTHANC_DICOM_MODALITIES: '{"PACS": ["AET", "host"]}' }],
    ['ORTHANC_DICOM_MODALITIES', { ORTHANC_DICOM_MODALITIES: '{"PACS": ["AET", "host", "99999"]}' }],
    ['ORTHANC_AUTHENTICATION_ENABLED', { ORTHANC_AUTHENTICATION_ENABLED: 'maybe' }],
    ['ORTHANC_URL', { ORTHANC_URL: 'ftp://pacs' }],
    ['UID', { UID: 'root' }],
    ['GID', { UID: '1000' }],
    ['UID', { GID: '1000' }],
    ['FUNCTIONS_HTTP_PORT', { FUNCTIONS_HTTP_PORT: '0' }],
    ['AUTOMATION_DOWNLOAD_CONCURRENCY', { AUTOMATION_DOWNLOAD_CONCURRENCY: '1000' }],
    ['AUTOMATION_LOG_PHI', { AUTOMATION_LOG_PHI: 'sometimes' }],
    ['MODALITY_BROKEN', { MODALITY_BROKEN: 'AET|host' }],
    ['ORTHANC_DESTINATION_PERMISSIONS', { ORTHANC_DESTINATION_PERMISSIONS: 'PACS:everything' }],
    ['ORTHANC_ALLOWED_SENDERS', { ORTHANC_ALLOWED_SENDERS: 'MRI|MRI_AET|mri.local' }],
    ['MODALITY_BADPORT', { MODALITY_BADPORT: 'AET|host|99999' }],
    ['ORTHANC_TIMEOUT_SECONDS', { ORTHANC_TIMEOUT_SECONDS: '0' }],
    ['ORTHANC_WEB_PORT', { ORTHANC_WEB_PORT: '80a' }],
    ['AUTOMATION_STEP_CONCURRENCY', { AUTOMATION_STEP_CONCURRENCY: '0' }],
    ['AUTOMATION_SWEEP_PAGE_SIZE', { AUTOMATION_SWEEP_PAGE_SIZE: 'all' }],
    ['AUTOMATION_CHANGE_FEED_BATCH', { AUTOMATION_CHANGE_FEED_BATCH: '100000' }],
    ['AUTOMATION_FORWARD_POLL_SECONDS', { AUTOMATION_FORWARD_POLL_SECONDS: '-5' }],
    ['AUTOMATION_FORWARD_MAX_ATTEMPTS', { AUTOMATION_FORWARD_MAX_ATTEMPTS: '1.5' }],
    ['AUTOMATION_DESTINATION_STUCK_MINUTES', { AUTOMATION_DESTINATION_STUCK_MINUTES: '0.01' }],
    ['AUTOMATION_STALE_HEARTBEAT_SECONDS', { AUTOMATION_STALE_HEARTBEAT_SECONDS: '1' }],
    ['AUTOMATION_REPLACE_QUIET_SECONDS', { AUTOMATION_REPLACE_QUIET_SECONDS: '-1' }],
    ['AUTOMATION_LEDGER_RETENTION_DAYS', { AUTOMATION_LEDGER_RETENTION_DAYS: '-1' }],
    ['AUTOMATION_ALERT_WEBHOOKS', { AUTOMATION_ALERT_WEBHOOKS: 'https://hooks.example.org/a,not a url' }],
    ['AUTOMATION_ALERT_WEBHOOKS', { AUTOMATION_ALERT_WEBHOOKS: 'email=https://hooks.example.org/a' }],
    ['AUTOMATION_ALERT_FORMAT', { AUTOMATION_ALERT_FORMAT: 'xml' }],
    ['AUTOMATION_ALERT_MIN_INTERVAL_SECONDS', { AUTOMATION_ALERT_MIN_INTERVAL_SECONDS: '-1' }],
    ['AUTOMATION_ALERT_DISK_FREE_PERCENT', { AUTOMATION_ALERT_DISK_FREE_PERCENT: '100' }],
    ['WORKLIST_SOURCE', { WORKLIST_SOURCE: 'ftp://bookings.example.org/today.ics', WORKLIST_FOLDER: '/srv/wl' }],
    ['WORKLIST_SQL', { WORKLIST_SQL: 'SELECT * FROM bookings' }],
    ['WORKLIST_MAPPING', { WORKLIST_MAPPING: '/srv/mapping.json' }],
    ['WORKLIST_FOLDER', { WORKLIST_SOURCE: '/srv/bookings.ics' }],
    ['WORKLIST_SCHEDULE', { WORKLIST_SCHEDULE: 'every five minutes' }],
    ['WORKLIST_DAYS_AHEAD', { WORKLIST_DAYS_AHEAD: '99' }],
    ['WORKLIST_GRACE_HOURS', { WORKLIST_GRACE_HOURS: '-1' }],
    ['WORKLIST_CALLERS', { WORKLIST_CALLERS: 'NOBODY_REGISTERED' }],
    ['AUTOMATION_ANONYMISATION_SECRET', { AUTOMATION_ANONYMISATION_SECRET: 'too-short' }],
    [
      'AUTOMATION_STAGING_PATH',
      { ORTHANC_AUTOMATION_STORAGE_PATH: '/srv/out', AUTOMATION_STAGING_PATH: '/srv/out/staging' },
    ],
  ];
  // Free text (names, paths, passwords, connection strings, secrets) cannot be wrong on its own.
  const freeText = new Set([
    'ORTHANC_USERNAME',
    'ORTHANC_PASSWORD',
    'ORTHANC_DISPLAY_NAME',
    'ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH',
    'ORTHANC_AUTOMATION_STORAGE_PATH',
    'AzureWebJobsStorage',
    'AUTOMATION_PUBLISH_BLOB_CONNECTION',
    'APPLICATIONINSIGHTS_CONNECTION_STRING',
  ]);
  it('has a bad-value case for every validated variable', () => {
    const covered = new Set(badValues.map(([variable]) => variable));
    const uncovered = ENVIRONMENT_VARIABLES.filter((v) => !freeText.has(v) && !covered.has(v));
    assert.deepEqual(uncovered, []);
  });
  for (const [variable, env] of badValues) {
    it(`names ${variable} when ${JSON.stringify(env)} is wrong`, () => {
      const problems = problemsFor(env);
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0], new RegExp(`^${variable}: `));
    });
  }

  it('reports every bad variable at once', () => {
    const problems = problemsFor({ ORTHANC_HTTP_PORT: 'x', ORTHANC_STABLE_AGE: 'y' });
    assert.deepEqual(problems.map((p) => p.split(':')[0]).sort(), ['ORTHANC_HTTP_PORT', 'ORTHANC_STABLE_AGE']);
  });
});
