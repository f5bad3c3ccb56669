/**
 * The dashboard's destinations without servers: what the API accepts and refuses (one reason per
 * field), who the audit names, how the catalog merges the environment's destinations with the stored
 * ones, and what each change does to the store, the audit and Orthanc (a recording fake here; the
 * e2e test drives a real Orthanc and storescp).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { z } from 'zod';
import type { ModalityDefinition } from '../../shared/config';
import { destinationRows, formatDestinations } from '../../shared/cli/format';
import { auditActor, REMOTE_USER_HEADER } from '../../shared/destinations/actor';
import { applyStoredDestinations, createDestinationAdmin } from '../../shared/destinations/admin';
import { createDestinationCatalog, withRulesUsing } from '../../shared/destinations/catalog';
import { DestinationConflict, type StoredDicomDestination } from '../../shared/destinations/store';
import { destinationEditSchema, isHostName, newDestinationSchema } from '../../shared/destinations/validation';
import type { EchoState } from '../../shared/orthanc/destinations';
import { orthancModalityBody, type AllowedSender } from '../../shared/orthanc/peers';
import { describeIssues } from '../../shared/util/issues';
import { createMemoryDestinationStore } from '../support/memory-destinations';

function refusal(body: unknown, schema: z.ZodType = newDestinationSchema): string {
  const parsed = schema.safeParse(body);
  assert.equal(parsed.success, false, `refused: ${JSON.stringify(body)}`);
  return describeIssues(parsed.error, 'body');
}

describe('destination input', () => {
  it('accepts a name, an AE title, a host and a port, trimmed', () => {
    assert.deepEqual(
      newDestinationSchema.parse({ name: ' AI_NODE-2 ', aet: ' AINODE ', host: 'ai.local', port: 104 }),
      {
        name: 'AI_NODE-2',
        aet: 'AINODE',
        host: 'ai.local',
        port: 104,
      },
    );
    for (const host of ['10.0.0.5', '::1', 'pacs', 'pacs.hospital.example', 'node-7.example.'])
      assert.ok(isHostName(host), host);
  });

  it('names each bad field with its reason', () => {
    const all = refusal({ name: 'a b', aet: 'WAY_TOO_LONG_AE_TITLE', host: 'http://pacs:104/x', port: 70000 });
    assert.match(all, /name: use 1-64 letters, digits, _ or -/);
    assert.match(all, /aet: an AE title is 1-16 printable ASCII characters/);
    assert.match(all, /host: expected an IP address or a DNS host name/);
    assert.match(all, /port: port must be between 1 and 65535/);
    assert.match(
      refusal({}),
      /name: name is required; aet: aet is required; host: host is required; port: port must be a number/,
    );
    assert.match(refusal({ name: 'P', aet: 'A\\B', host: 'h', port: 1 }), /aet: an AE title/);
    assert.match(refusal({ name: 'P', aet: 'A', host: 'h', port: '104' }), /port: port must be a number/);
    assert.match(refusal({ name: 'P', aet: 'A', host: 'h', port: 10.5 }), /port: port must be a whole number/);
    assert.match(refusal({ name: 'P', aet: 'A', host: 'h', port: 1, admin: true }), /Unrecognized key: "admin"/);
    assert.match(refusal({ name: '../x', aet: 'A', host: 'h', port: 1 }), /name:/);
    assert.match(refusal({ name: 'P', aet: '', host: 'h', port: 1 }), /aet:/);
    for (const host of ['', 'a b', '999.1.1.1', 'host:104', '-bad.example', 'a_b.example'])
      assert.ok(!isHostName(host), host);
    assert.match(
      refusal({ name: 'P', aet: 'A', host: 'h', port: 1 }, destinationEditSchema),
      /Unrecognized key: "name"/,
    );
  });

  it('names the user nginx logged in, or the function key', () => {
    assert.equal(auditActor('alice'), 'alice');
    assert.equal(auditActor(' bob\u0000\u001b[31m '), 'bob[31m');
    assert.equal(auditActor(''), 'function-key');
    assert.equal(auditActor(null), 'function-key');
    assert.equal(auditActor('x'.repeat(300)).length, 64);
  });

  it('gets the name from nginx, which sets X-Remote-User itself on the API location', () => {
    const template = readFileSync(path.join(__dirname, '../../deploy/nginx/default.conf.template'), 'utf8');
    const api = /location \/api\/ \{([^}]*)\}/.exec(template)?.[1] ?? '';
    assert.match(api, /auth_basic \$autorthanc_api_realm;/);
    // proxy_set_header replaces a client's header of that name, so a browser cannot claim another user.
    assert.match(api, /^\s*proxy_set_header X-Remote-User \$autorthanc_remote_user;$/m);
    // Only a login nginx checked names a user: with a key of its own, a client's Basic header is unchecked.
    assert.match(
      template,
      /map \$autorthanc_key_state \$autorthanc_remote_user \{\s*login\s+\$remote_user;\s*default\s+"";\s*\}/,
    );
    assert.equal(REMOTE_USER_HEADER, 'x-remote-user');
  });
});

const ENV: Record<string, ModalityDefinition> = { PACS: { AET: 'PACS', Host: '10.0.0.5', Port: 104, allow: ['find'] } };
const WEB = { CLOUD: { url: 'https://cloud.example/dicom-web', token: 'secret-token' } };

function setup(senders?: Record<string, AllowedSender>, env: NodeJS.ProcessEnv = {}) {
  const store = createMemoryDestinationStore();
  const catalog = createDestinationCatalog({ modalities: ENV, dicomweb: WEB, store, env });
  const calls: string[] = [];
  const bodies: Record<string, ReturnType<typeof orthancModalityBody>> = {};
  const orthanc = {
    async putModality(name: string, peer: Parameters<typeof orthancModalityBody>[0]) {
      calls.push(`put ${name}`);
      bodies[name] = orthancModalityBody(peer);
    },
    async echo(name: string) {
      calls.push(`echo ${name}`);
      return { ok: true as const };
    },
    async deleteModality(name: string) {
      calls.push(`delete ${name}`);
      return delete bodies[name];
    },
  };
  const echoes = new Map<string, EchoState>();
  const lines: string[] = [];
  let clock = Date.parse('2026-12-02T08:00:00.000Z');
  const admin = createDestinationAdmin({
    catalog,
    orthanc,
    allowedSenders: senders,
    echoes,
    log: (l) => lines.push(l),
    now: () => new Date((clock += 1000)),
  });
  return { store, catalog, admin, calls, bodies, echoes, lines, orthanc };
}

describe('destination catalog', () => {
  it('merges the environment and the stored destinations; the environment wins a name both have', async () => {
    const { store, catalog } = setup();
    const at = '2026-12-02T08:00:00.000Z';
    await store.create({
      name: 'AI',
      aet: 'AINODE',
      host: '10.0.0.9',
      port: 11112,
      createdAt: at,
      updatedAt: at,
      updatedBy: 'alice',
    });
    await store.create({
      name: 'pacs',
      aet: 'OTHER',
      host: '10.0.0.6',
      port: 104,
      createdAt: at,
      updatedAt: at,
      updatedBy: 'bob',
    });
    assert.deepEqual(await catalog.all(), {
      AI: { AET: 'AINODE', Host: '10.0.0.9', Port: 11112 },
      PACS: ENV.PACS,
    });
    assert.deepEqual(Object.keys(await catalog.stored()), ['AI']);
    const listed = await catalog.list();
    assert.deepEqual(
      listed.map((d) => [d.name, d.kind, d.source, d.readOnly, d.shadowed ?? false]),
      [
        ['AI', 'dicom', 'dashboard', false, false],
        ['CLOUD', 'dicomweb', 'env', true, false],
        ['PACS', 'dicom', 'env', true, false],
        ['pacs', 'dicom', 'dashboard', false, true],
      ],
    );
    assert.equal(listed.find((d) => d.name === 'CLOUD')!.url, 'https://cloud.example/dicom-web');
    assert.ok(!JSON.stringify(listed).includes('secret-token'), 'no DICOMweb credential is listed');
    assert.deepEqual(catalog.fromEnvironment('cloud'), { name: 'CLOUD', kind: 'dicomweb' });
    const used = withRulesUsing(listed, [
      { id: 'to_ai', destinations: ['AI', 'PACS'] },
      { id: 'to_pacs', destinations: ['PACS'] },
    ]);
    assert.deepEqual(
      used.map((d) => [d.name, d.usedBy]),
      [
        ['AI', ['to_ai']],
        ['CLOUD', undefined],
        ['PACS', ['to_ai', 'to_pacs']],
        ['pacs', undefined],
      ],
    );
  });
});

describe('destination changes', () => {
  it('adds: saved, audited with who, put into Orthanc with echo and store only, C-ECHOed', async () => {
    const { admin, store, calls, bodies, echoes, catalog } = setup();
    const added = await admin.add({ name: 'AI', aet: 'AINODE', host: '10.0.0.9', port: 11112 }, 'alice');
    assert.equal(added.kind, 'ok');
    assert.deepEqual(calls, ['put AI', 'echo AI']);
    assert.deepEqual(
      { ...bodies.AI },
      {
        AET: 'AINODE',
        Host: '10.0.0.9',
        Port: 11112,
        AllowEcho: true,
        AllowStore: true,
        AllowFind: false,
        AllowFindWorklist: false,
        AllowGet: false,
        AllowMove: false,
        AllowStorageCommitment: true,
      },
    );
    assert.equal(echoes.get('AI')?.source, 'dashboard');
    assert.equal(echoes.get('AI')?.echo, 'ok');
    assert.equal((await store.get('ai'))?.updatedBy, 'alice');
    assert.deepEqual(await store.audit(10), [
      {
        at: '2026-12-02T08:00:01.000Z',
        who: 'alice',
        action: 'add',
        name: 'AI',
        after: { aet: 'AINODE', host: '10.0.0.9', port: 11112 },
      },
    ]);
    assert.deepEqual((await catalog.all()).AI, { AET: 'AINODE', Host: '10.0.0.9', Port: 11112 });
  });

  it('refuses what would clash: the environment, another case of a name, a sender, a shared AE title', async () => {
    const { admin, store, calls } = setup({ SCANNER: { AET: 'MRI', Host: '10.0.0.7' } });
    const env = await admin.add({ name: 'pacs', aet: 'X', host: 'h', port: 1 }, 'alice');
    assert.equal(env.kind, 'conflict');
    assert.match(
      (env as { error: string }).error,
      /'PACS' comes from the environment .* read-only here; change it in \.env/,
    );
    const web = await admin.add({ name: 'Cloud', aet: 'X', host: 'h', port: 1 }, 'alice');
    assert.match((web as { error: string }).error, /DICOMWEB_CLOUD/);
    const sender = await admin.add({ name: 'scanner', aet: 'X', host: 'h', port: 1 }, 'alice');
    assert.match((sender as { error: string }).error, /allowed sender/);
    const sharedAet = await admin.add({ name: 'AI', aet: 'mri', host: '10.0.0.9', port: 104 }, 'alice');
    assert.equal(sharedAet.kind, 'conflict');
    assert.match((sharedAet as { error: string }).error, /AET 'MRI' is used by .*host check/);
    assert.equal((await admin.add({ name: 'AI', aet: 'AINODE', host: '10.0.0.9', port: 104 }, 'alice')).kind, 'ok');
    const twice = await admin.add({ name: 'ai', aet: 'AINODE2', host: '10.0.0.9', port: 104 }, 'bob');
    assert.match((twice as { error: string }).error, /'AI' exists already/);
    assert.equal((await store.audit(10)).length, 1, 'only the one change made is audited');
    assert.deepEqual(calls, ['put AI', 'echo AI'], 'Orthanc is only told of the change made');
  });

  it('edits: before and after audited, Orthanc updated; an unchanged edit records nothing', async () => {
    const { admin, store, bodies } = setup();
    await admin.add({ name: 'AI', aet: 'AINODE', host: '10.0.0.9', port: 11112 }, 'alice');
    const edited = await admin.edit('ai', { aet: 'AINODE', host: '10.0.0.9', port: 11113 }, 'bob');
    assert.equal(edited.kind, 'ok');
    assert.equal(bodies.AI.Port, 11113);
    const [change] = await store.audit(1);
    assert.deepEqual(change, {
      at: '2026-12-02T08:00:02.000Z',
      who: 'bob',
      action: 'edit',
      name: 'AI',
      before: { aet: 'AINODE', host: '10.0.0.9', port: 11112 },
      after: { aet: 'AINODE', host: '10.0.0.9', port: 11113 },
    });
    const record = (await store.get('AI')) as StoredDicomDestination | undefined;
    assert.deepEqual([record?.port, record?.updatedBy, record?.createdAt], [11113, 'bob', '2026-12-02T08:00:01.000Z']);
    assert.equal((await admin.edit('AI', { aet: 'AINODE', host: '10.0.0.9', port: 11113 }, 'carol')).kind, 'ok');
    assert.equal((await store.audit(10)).length, 2);
    assert.equal((await admin.edit('NOPE', { aet: 'A', host: 'h', port: 1 }, 'bob')).kind, 'not-found');
    const env = await admin.edit('PACS', { aet: 'A', host: 'h', port: 1 }, 'bob');
    assert.equal(env.kind, 'conflict');
  });

  it('deletes: audited, removed from Orthanc and the status report; the environment`s cannot be', async () => {
    const { admin, store, calls, echoes, catalog } = setup();
    await admin.add({ name: 'AI', aet: 'AINODE', host: '10.0.0.9', port: 11112 }, 'alice');
    const deleted = await admin.remove('AI', 'bob');
    assert.equal(deleted.kind, 'ok');
    assert.deepEqual((deleted as { orthanc: unknown }).orthanc, { removed: true });
    assert.deepEqual(calls.slice(-1), ['delete AI']);
    assert.equal(echoes.has('AI'), false);
    assert.equal(await store.get('AI'), undefined);
    assert.equal((await catalog.all()).AI, undefined);
    const [change] = await store.audit(1);
    assert.deepEqual(change, {
      at: '2026-12-02T08:00:02.000Z',
      who: 'bob',
      action: 'delete',
      name: 'AI',
      before: { aet: 'AINODE', host: '10.0.0.9', port: 11112 },
    });
    assert.equal((await admin.remove('AI', 'bob')).kind, 'not-found');
    const env = await admin.remove('PACS', 'bob');
    assert.equal(env.kind, 'conflict');
    assert.match((env as { error: string }).error, /read-only/);
    assert.deepEqual(calls.slice(-1), ['delete AI'], 'Orthanc keeps the environment`s destination');
  });

  it('refuses a write made from a stale read (two operators editing at once)', async () => {
    const { admin, store } = setup();
    await admin.add({ name: 'AI', aet: 'AINODE', host: '10.0.0.9', port: 11112 }, 'alice');
    const stale = (await store.get('AI')) as StoredDicomDestination;
    await admin.edit('AI', { aet: 'AINODE', host: '10.0.0.9', port: 2 }, 'bob');
    await assert.rejects(
      store.replace(stale, { ...stale, port: 3 }),
      (e: unknown) => e instanceof DestinationConflict && e.reason === 'changed',
    );
    await assert.rejects(store.remove(stale), DestinationConflict);
    assert.equal(((await store.get('AI')) as StoredDicomDestination).port, 2);
  });

  it('puts the stored destinations into Orthanc at start-up, marked as the dashboard`s', async () => {
    const { admin, echoes, calls, orthanc, catalog } = setup();
    await admin.add({ name: 'AI', aet: 'AINODE', host: '10.0.0.9', port: 11112 }, 'alice');
    echoes.clear();
    const pacs: EchoState = {
      aet: 'PACS',
      host: '10.0.0.5',
      port: 104,
      configured: true,
      echo: 'ok',
      checkedAt: '',
      source: 'env',
    };
    echoes.set('PACS', pacs);
    calls.length = 0;
    const states = await applyStoredDestinations({ catalog, orthanc, echoes, log: () => undefined });
    assert.deepEqual(Object.keys(states), ['AI']);
    assert.equal(echoes.get('PACS')?.source, 'env', 'the environment`s state keeps its source');
    assert.deepEqual(calls, ['put AI', 'echo AI'], 'the environment`s are applied by their own call');
    assert.equal(echoes.get('AI')?.source, 'dashboard');
  });
});

describe('DICOMweb destinations from the dashboard', () => {
  const web = (url: string, extra: Record<string, unknown> = {}) => ({ name: 'Web', kind: 'dicomweb', url, ...extra });

  it('accepts an http(s) base URL without trailing slashes, and a STOW_AUTH_ settings prefix', () => {
    assert.deepEqual(newDestinationSchema.parse(web(' https://pacs.example/dicom-web/ ')), {
      name: 'Web',
      kind: 'dicomweb',
      url: 'https://pacs.example/dicom-web',
    });
    assert.deepEqual(
      destinationEditSchema.parse({
        kind: 'dicomweb',
        url: 'http://10.0.0.7:8042/dicom-web',
        credentialsFrom: 'STOW_AUTH_PACS',
      }),
      { kind: 'dicomweb', url: 'http://10.0.0.7:8042/dicom-web', credentialsFrom: 'STOW_AUTH_PACS' },
    );
  });

  it('refuses other schemes, credentials in the URL, a query, a secret instead of a setting name', () => {
    assert.match(refusal(web('ftp://pacs/dicom-web')), /url: only http and https/);
    assert.match(refusal(web('pacs:8042/dicom-web')), /url: only http and https|url: expected an http\(s\) URL/);
    assert.match(refusal(web('not a url')), /url: expected an http\(s\) URL/);
    assert.match(refusal(web('https://alice:pw@pacs/dicom-web')), /url: no credentials in the URL/);
    assert.match(refusal(web('https://alice@pacs/dicom-web')), /url: no credentials in the URL/);
    assert.match(refusal(web('https://pacs/dicom-web?token=x')), /url: the base URL must not have a query/);
    // Only the STOW_AUTH_ namespace: naming ORTHANC would send Orthanc's own credentials to any URL.
    for (const credentialsFrom of ['ORTHANC', 'AzureWebJobsStorage', 'STOW_AUTH_', 'Bearer abc.def', 'stow_auth_x'])
      assert.match(
        refusal(web('https://pacs/dicom-web', { credentialsFrom })),
        /credentialsFrom: name a setting prefix/,
      );
    assert.match(refusal(web('https://pacs/dicom-web', { token: 'abc' })), /Unrecognized key: "token"/);
    assert.match(refusal(web('https://pacs/dicom-web', { aet: 'X' })), /Unrecognized key: "aet"/);
  });

  it('adds, edits and deletes one: audited with the setting name only, never Orthanc, never a clash', async () => {
    const env = { STOW_AUTH_WEB_TOKEN: 'super-secret-token' };
    const { admin, store, calls, catalog, lines } = setup(undefined, env);
    await admin.add({ name: 'AI', aet: 'AINODE', host: '10.0.0.9', port: 11112 }, 'alice');
    calls.length = 0;
    const added = await admin.add(
      { name: 'Web', kind: 'dicomweb', url: 'https://pacs.example/dicom-web', credentialsFrom: 'STOW_AUTH_WEB' },
      'alice',
    );
    assert.equal(added.kind, 'ok');
    assert.deepEqual(calls, [], 'Orthanc has nothing to do with a DICOMweb destination');
    for (const name of ['ai', 'CLOUD', 'pacs', 'web']) {
      const clash = await admin.add({ name, kind: 'dicomweb', url: 'https://x.example/dw' }, 'bob');
      assert.equal(clash.kind, 'conflict', name);
    }
    const dicomOverWeb = await admin.add({ name: 'WEB', aet: 'X', host: 'h', port: 1 }, 'bob');
    assert.match((dicomOverWeb as { error: string }).error, /'Web' exists already/);
    const listed = (await catalog.list()).find((d) => d.name === 'Web')!;
    assert.deepEqual(
      [listed.kind, listed.source, listed.readOnly, listed.url, listed.credentialsFrom, listed.credentialsSet],
      ['dicomweb', 'dashboard', false, 'https://pacs.example/dicom-web', 'STOW_AUTH_WEB', true],
    );
    assert.deepEqual(Object.keys(await catalog.all()), ['AI', 'PACS'], 'no DICOMweb one goes to /modalities');
    assert.deepEqual(Object.keys(await catalog.dicomweb()).sort(), ['CLOUD', 'Web']);
    assert.equal((await catalog.dicomweb()).Web.url, 'https://pacs.example/dicom-web');

    const edited = await admin.edit('web', { kind: 'dicomweb', url: 'http://10.0.0.7:8042/dicom-web' }, 'bob');
    assert.equal(edited.kind, 'ok');
    const toDicom = await admin.edit('Web', { aet: 'X', host: 'h', port: 1 }, 'bob');
    assert.match((toDicom as { error: string }).error, /is a DICOMweb one; delete it/);
    assert.equal((await admin.remove('Web', 'carol')).kind, 'ok');
    assert.deepEqual(calls, [], 'nor on edit and delete');
    assert.equal(await store.get('Web'), undefined);
    const audit = await store.audit(10);
    assert.deepEqual(
      audit.slice(0, 3).map((c) => [c.action, c.who, c.before, c.after]),
      [
        ['delete', 'carol', { kind: 'dicomweb', url: 'http://10.0.0.7:8042/dicom-web' }, undefined],
        [
          'edit',
          'bob',
          { kind: 'dicomweb', url: 'https://pacs.example/dicom-web', credentialsFrom: 'STOW_AUTH_WEB' },
          { kind: 'dicomweb', url: 'http://10.0.0.7:8042/dicom-web' },
        ],
        [
          'add',
          'alice',
          undefined,
          { kind: 'dicomweb', url: 'https://pacs.example/dicom-web', credentialsFrom: 'STOW_AUTH_WEB' },
        ],
      ],
    );
    const everything = JSON.stringify([audit, lines, await store.list(), await catalog.list()]);
    assert.ok(!everything.includes('super-secret-token'), 'the secret is nowhere but the environment');
  });

  it('a stored one whose credentials settings are missing refuses to send, naming the setting', async () => {
    const { admin, catalog } = setup(undefined, { STOW_AUTH_HALF_USERNAME: 'u' });
    await admin.add(
      { name: 'Half', kind: 'dicomweb', url: 'https://pacs.example/dw', credentialsFrom: 'STOW_AUTH_HALF' },
      'a',
    );
    await admin.add(
      { name: 'None', kind: 'dicomweb', url: 'https://pacs.example/dw', credentialsFrom: 'STOW_AUTH_NONE' },
      'a',
    );
    const clients = await catalog.dicomweb();
    const outcome = await clients.Half.store([{ sopInstanceUid: '1.2.3', bytes: Buffer.alloc(0) }]);
    assert.deepEqual(
      [...outcome.failed],
      [['1.2.3', 'set STOW_AUTH_HALF_USERNAME and STOW_AUTH_HALF_PASSWORD together']],
    );
    assert.deepEqual(await clients.None.probe(), {
      reachable: false,
      error: 'STOW_AUTH_NONE_TOKEN or STOW_AUTH_NONE_USERNAME/_PASSWORD is not set in the environment',
    });
    assert.deepEqual(
      (await catalog.list()).filter((d) => d.source === 'dashboard').map((d) => [d.name, d.credentialsSet]),
      [
        ['Half', false],
        ['None', false],
      ],
    );
  });
});

describe('autorthanc destinations', () => {
  it('shows where each destination comes from', () => {
    const state = (source?: 'env' | 'dashboard'): EchoState => ({
      aet: 'A',
      host: 'h',
      port: 104,
      configured: true,
      echo: 'ok',
      checkedAt: '2026-12-02T08:00:00.000Z',
      ...(source ? { source } : {}),
    });
    const report = {
      destinations: { AI: state('dashboard'), PACS: state() },
      dicomweb: { CLOUD: { url: 'https://cloud.example/dicom-web', reachable: true } },
    };
    assert.deepEqual(
      destinationRows(report).map((r) => [r.name, r.source]),
      [
        ['AI', 'dashboard'],
        ['CLOUD', 'env'],
        ['PACS', 'env'],
      ],
    );
    const lines = formatDestinations(report);
    assert.match(lines[0], /^NAME\s+KIND\s+SOURCE\s+TARGET/);
    assert.match(
      lines.find((l) => l.startsWith('AI'))!,
      /^AI\s+dicom\s+dashboard\s+A@h:104/,
    );
  });
});
