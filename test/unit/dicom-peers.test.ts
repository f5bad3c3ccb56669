/**
 * Issue 17's settings: ORTHANC_ALLOWED_SENDERS and ORTHANC_DESTINATION_PERMISSIONS as loadConfig
 * parses them, the Orthanc modality bodies they become, and the settings the launchers derive.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ensureDicomPeers } from '../../shared/orthanc/destinations';
import { loadConfig } from '../../shared/config';
import { orthancDicomAccessEnv, orthancModalityBody } from '../../shared/orthanc/peers';
import type { OrthancModality } from '../../shared/orthanc/schemas';
import { problemsFor } from '../support/config';

describe('ORTHANC_ALLOWED_SENDERS', () => {
  it('is unset by default: any sender may store', () => {
    assert.equal(loadConfig({}).allowedSenders, undefined);
    assert.equal(loadConfig({ ORTHANC_ALLOWED_SENDERS: '' }).allowedSenders, undefined);
  });

  it('reads NAME|AET|IPV4 entries separated by commas, spaces allowed', () => {
    const config = loadConfig({ ORTHANC_ALLOWED_SENDERS: 'SCANNER1|MRI_AET|10.0.0.7, CT | CT AET |10.0.0.8' });
    assert.deepEqual(config.allowedSenders, {
      SCANNER1: { AET: 'MRI_AET', Host: '10.0.0.7' },
      CT: { AET: 'CT AET', Host: '10.0.0.8' },
    });
  });

  const bad: Array<[string, string, RegExp]> = [
    ['a host name', 'MRI|MRI_AET|mri.example.org', /'mri\.example\.org' is not an IPv4 address/],
    ['a missing field', 'MRI|10.0.0.7', /expected NAME\|AET\|IPV4/],
    ['an AET longer than 16 characters', 'MRI|AN_AE_TITLE_TOO_LONG|10.0.0.7', /expected NAME\|AET\|IPV4/],
    ['a name with a space', 'MY MRI|MRI|10.0.0.7', /expected NAME\|AET\|IPV4/],
    ['a name listed twice', 'MRI|A|10.0.0.7,MRI|B|10.0.0.8', /sender 'MRI' is listed twice/],
    ['a blank value', '   ', /is blank/],
  ];
  for (const [what, value, message] of bad) {
    it(`refuses ${what}, naming the variable`, () => {
      const problems = problemsFor({ ORTHANC_ALLOWED_SENDERS: value });
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0], /^ORTHANC_ALLOWED_SENDERS: /);
      assert.match(problems[0], message);
    });
  }

  it('refuses an AET a sender shares with a destination (Orthanc would skip the host check for it), case-insensitively', () => {
    const problems = problemsFor({
      ORTHANC_ALLOWED_SENDERS: 'WS|ws1|10.0.0.7',
      MODALITY_WORKSTATION: 'WS1|10.0.0.7|104',
    });
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0], /^ORTHANC_ALLOWED_SENDERS: AET 'WS1' is used by destination WORKSTATION and sender WS/);
  });

  it('refuses a sender named like a destination', () => {
    const problems = problemsFor({
      ORTHANC_ALLOWED_SENDERS: 'PACS|SENDER|10.0.0.7',
      MODALITY_PACS: 'PACSAET|10.0.0.5|104',
    });
    assert.deepEqual(problems, [
      "ORTHANC_ALLOWED_SENDERS: sender 'PACS' has the name of a destination; give it another name",
    ]);
  });
});

describe('ORTHANC_DESTINATION_PERMISSIONS', () => {
  it('gives destinations no query/retrieve by default', () => {
    const config = loadConfig({ ORTHANC_DICOM_MODALITIES: '{"PACS": ["PACSAET", "10.0.0.5", 104]}' });
    assert.deepEqual(config.modalities, { PACS: { AET: 'PACSAET', Host: '10.0.0.5', Port: 104 } });
  });

  it('grants find, get and move per destination, in both destination formats', () => {
    const config = loadConfig({
      ORTHANC_DICOM_MODALITIES: '{"PACS": ["PACSAET", "10.0.0.5", 104]}',
      MODALITY_WS: 'WS1|10.0.0.6|4242',
      MODALITY_OTHER: 'OTHER|10.0.0.9|104',
      ORTHANC_DESTINATION_PERMISSIONS: 'PACS:find+move, WS:GET+get',
    });
    assert.deepEqual(config.modalities.PACS.allow, ['find', 'move']);
    assert.deepEqual(config.modalities.WS.allow, ['get']);
    assert.equal(config.modalities.OTHER.allow, undefined);
  });

  const bad: Array<[string, NodeJS.ProcessEnv, RegExp]> = [
    [
      'an unknown operation',
      { MODALITY_PACS: 'A|10.0.0.5|104', ORTHANC_DESTINATION_PERMISSIONS: 'PACS:find+delete' },
      /op one of find, get, move/,
    ],
    [
      'echo or store (always allowed, never granted)',
      { MODALITY_PACS: 'A|10.0.0.5|104', ORTHANC_DESTINATION_PERMISSIONS: 'PACS:store' },
      /echo and store are always allowed/,
    ],
    [
      'an entry without operations',
      { MODALITY_PACS: 'A|10.0.0.5|104', ORTHANC_DESTINATION_PERMISSIONS: 'PACS' },
      /expected NAME:op/,
    ],
    [
      'a destination listed twice',
      { MODALITY_PACS: 'A|10.0.0.5|104', ORTHANC_DESTINATION_PERMISSIONS: 'PACS:find,PACS:get' },
      /'PACS' is listed twice/,
    ],
    [
      'a name that is not a destination',
      { ORTHANC_DESTINATION_PERMISSIONS: 'NOWHERE:find' },
      /'NOWHERE' is not a destination/,
    ],
    [
      'a grant to a destination known by host name',
      { MODALITY_PACS: 'PACSAET|pacs.example.org|104', ORTHANC_DESTINATION_PERMISSIONS: 'PACS:find' },
      /a grant needs its IPv4 address/,
    ],
    [
      'a grant on an AET two destinations share',
      { MODALITY_A: 'SAME|10.0.0.1|104', MODALITY_B: 'same|10.0.0.2|104', ORTHANC_DESTINATION_PERMISSIONS: 'A:find' },
      /AET 'SAME' is used by destination A and destination B/,
    ],
  ];
  for (const [what, env, message] of bad) {
    it(`refuses ${what}, naming the variable`, () => {
      const problems = problemsFor(env);
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.match(problems[0], /^ORTHANC_DESTINATION_PERMISSIONS: /);
      assert.match(problems[0], message);
    });
  }

  it('still accepts destinations sharing an AET when nothing depends on the host check (as before)', () => {
    const config = loadConfig({ MODALITY_A: 'SAME|10.0.0.1|104', MODALITY_B: 'SAME|10.0.0.2|105' });
    assert.deepEqual(Object.keys(config.modalities).sort(), ['A', 'B']);
  });
});

describe('what Orthanc is given', () => {
  it('spells out every permission: echo, store and storage commitment; find/get/move only when granted; never worklists', () => {
    assert.deepEqual(orthancModalityBody({ AET: 'PACSAET', Host: '10.0.0.5', Port: 104 }), {
      AET: 'PACSAET',
      Host: '10.0.0.5',
      Port: 104,
      AllowEcho: true,
      AllowStore: true,
      AllowFind: false,
      AllowFindWorklist: false,
      AllowGet: false,
      AllowMove: false,
      AllowStorageCommitment: true,
    });
    const granted = orthancModalityBody({ AET: 'QR', Host: '10.0.0.6', Port: 104, allow: ['find', 'move'] });
    assert.deepEqual([granted.AllowFind, granted.AllowGet, granted.AllowMove], [true, false, true]);
    assert.equal(
      orthancModalityBody({ AET: 'MRI', Host: '10.0.0.7' }).Port,
      104,
      'a sender gets a placeholder port (Orthanc requires one)',
    );
  });

  it('closes storing and echo to unknown callers exactly when a sender list is set', () => {
    assert.deepEqual(orthancDicomAccessEnv({}), {
      ORTHANC_DICOM_ALWAYS_ALLOW_STORE: 'true',
      ORTHANC_DICOM_ALWAYS_ALLOW_ECHO: 'true',
    });
    assert.deepEqual(orthancDicomAccessEnv({ ORTHANC_ALLOWED_SENDERS: '' }), {
      ORTHANC_DICOM_ALWAYS_ALLOW_STORE: 'true',
      ORTHANC_DICOM_ALWAYS_ALLOW_ECHO: 'true',
    });
    assert.deepEqual(orthancDicomAccessEnv({ ORTHANC_ALLOWED_SENDERS: 'MRI|MRI|10.0.0.7' }), {
      ORTHANC_DICOM_ALWAYS_ALLOW_STORE: 'false',
      ORTHANC_DICOM_ALWAYS_ALLOW_ECHO: 'false',
    });
  });

  it('puts back only the peers Orthanc lacks or holds with other permissions, and leaves extra ones alone', async () => {
    const config = loadConfig({
      MODALITY_PACS: 'PACSAET|10.0.0.5|104',
      MODALITY_QR: 'QR|10.0.0.6|104',
      ORTHANC_DESTINATION_PERMISSIONS: 'QR:find',
      ORTHANC_ALLOWED_SENDERS: 'MRI|MRI|10.0.0.7',
    });
    const present: Record<string, OrthancModality> = {
      PACS: { ...orthancModalityBody(config.modalities.PACS), Manufacturer: 'Generic', Timeout: 0 },
      // Registered by hand in the legacy form: every command allowed.
      QR: {
        ...orthancModalityBody({ AET: 'QR', Host: '10.0.0.6', Port: 104 }),
        AllowFind: true,
        AllowGet: true,
        AllowMove: true,
      },
      MANUAL: { AET: 'MANUAL', Host: '10.0.0.99', Port: 104 },
    };
    const puts: string[] = [];
    const orthanc = { modalities: async () => present, putModality: async (name: string) => void puts.push(name) };
    const put = await ensureDicomPeers(orthanc, config, () => {});
    assert.deepEqual(put, ['QR', 'MRI']);
    assert.deepEqual(puts, ['QR', 'MRI']);
    const untouched = {
      modalities: async () => assert.fail('no peers configured: Orthanc is not asked'),
      putModality: async () => assert.fail('nothing to put'),
    };
    assert.deepEqual(await ensureDicomPeers(untouched, loadConfig({}), () => {}), []);
  });
});
