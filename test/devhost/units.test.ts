/** The devhost's pure rules, without servers: host.json, outputs, schedules, routes, keys. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { authorised, compareRoutes, compileRoute, loopbackHost, matchRoute } from '../../devhost/http';
import { loadKeys, sameKey } from '../../devhost/keys';
import { decodeMessage, dotnetDate, outputMessages } from '../../devhost/queues';
import { applyLocalSettings, defaultHostId, parseTimeSpan, readHostSettings } from '../../devhost/settings';
import { parseSchedule, usesMonitor } from '../../devhost/timers';

describe('devhost settings', () => {
  it('applies host.json queue options and the host defaults', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hostjson-'));
    writeFileSync(
      path.join(dir, 'host.json'),
      JSON.stringify({
        extensions: {
          http: { routePrefix: '' },
          queues: {
            batchSize: 8,
            maxDequeueCount: 3,
            visibilityTimeout: '00:00:30',
            maxPollingInterval: '00:00:05',
            messageEncoding: 'none',
          },
        },
      }),
    );
    const s = readHostSettings(dir, {
      AZURE_FUNCTIONS_ENVIRONMENT: 'Production',
      AzureFunctionsWebHost__hostid: 'My-Host',
    });
    assert.equal(s.routePrefix, '');
    assert.deepEqual(
      { ...s.queues, newBatchThreshold: 0 },
      {
        batchSize: 8,
        newBatchThreshold: 0,
        maxDequeueCount: 3,
        visibilityTimeoutSeconds: 30,
        maxPollingIntervalMs: 5000,
        messageEncoding: 'none',
      },
    );
    assert.equal(s.hostId, 'my-host');
    const defaults = readHostSettings(mkdtempSync(path.join(os.tmpdir(), 'nohost-')), {
      AZURE_FUNCTIONS_ENVIRONMENT: 'Development',
      WEBSITE_SKU: 'Dynamic',
    });
    assert.deepEqual(defaults.queues, {
      batchSize: 16,
      newBatchThreshold: 8,
      maxDequeueCount: 5,
      visibilityTimeoutSeconds: 0,
      maxPollingIntervalMs: 2000,
      messageEncoding: 'base64',
    });
    assert.equal(defaults.routePrefix, 'api');
    assert.equal(
      readHostSettings(dir, { AZURE_FUNCTIONS_ENVIRONMENT: 'Production' }).queues.maxPollingIntervalMs,
      5000,
    );
  });

  it('reads host.json keys case-insensitively and lets AzureFunctionsJobHost__ settings override them', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hostjson-'));
    writeFileSync(
      path.join(dir, 'host.json'),
      JSON.stringify({
        Extensions: { Queues: { BatchSize: 4, MaxPollingInterval: '00:00:05', MessageEncoding: 'None' } },
      }),
    );
    const plain = readHostSettings(dir, { AZURE_FUNCTIONS_ENVIRONMENT: 'Production' });
    assert.equal(plain.queues.batchSize, 4);
    assert.equal(plain.queues.maxPollingIntervalMs, 5000);
    assert.equal(plain.queues.messageEncoding, 'none');
    const overridden = readHostSettings(dir, {
      AZURE_FUNCTIONS_ENVIRONMENT: 'Production',
      AzureFunctionsJobHost__extensions__queues__maxPollingInterval: '00:01:00',
      AzureFunctionsJobHost__extensions__http__routePrefix: 'v2',
    });
    assert.equal(overridden.queues.maxPollingIntervalMs, 60_000);
    assert.equal(overridden.queues.batchSize, 4, 'other keys kept');
    assert.equal(overridden.routePrefix, 'v2');
    writeFileSync(path.join(dir, 'host.json'), '{ not json');
    assert.throws(() => readHostSettings(dir, {}), /host\.json is not valid JSON/);
  });

  it('derives a stable host id like the host: lowercase, [a-z0-9-], at most 32 characters', () => {
    const id = defaultHostId('/some/app');
    assert.equal(id, defaultHostId('/some/app'));
    assert.notEqual(id, defaultHostId('/other/app'));
    assert.match(id, /^[a-z0-9-]{1,32}$/);
    assert.equal(
      readHostSettings('/nonexistent', { AzureFunctionsWebHost__hostid: 'Pinned-Host' }).hostId,
      'pinned-host',
    );
  });

  it('lets environment variables win over local.settings.json Values', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'localsettings-'));
    writeFileSync(
      path.join(dir, 'local.settings.json'),
      JSON.stringify({ Values: { A: 'from-file', B: 'from-file' } }),
    );
    const env: NodeJS.ProcessEnv = { A: 'from-env' };
    assert.deepEqual(applyLocalSettings(dir, env), ['B']);
    assert.deepEqual(env, { A: 'from-env', B: 'from-file' });
  });

  it('parses TimeSpans and rejects nonsense', () => {
    assert.equal(parseTimeSpan('00:00:05', 'x'), 5000);
    assert.equal(parseTimeSpan('1.00:00:00', 'x'), 86_400_000);
    assert.equal(parseTimeSpan('00:00:00.500', 'x'), 500);
    assert.throws(
      () => parseTimeSpan('soon', 'extensions.queues.visibilityTimeout'),
      /extensions\.queues\.visibilityTimeout must be a TimeSpan/,
    );
  });
});

describe('devhost queue conversions', () => {
  it('fans arrays out, writes objects as indented JSON and strings raw', () => {
    assert.deepEqual(outputMessages({ json: JSON.stringify([{ a: 1 }, 'x', 2, true]) }), [
      JSON.stringify({ a: 1 }, null, 2),
      'x',
      '2',
      'True',
    ]);
    assert.deepEqual(outputMessages({ string: '["a","b"]' }), ['a', 'b']);
    assert.deepEqual(outputMessages({ string: '{"k":"v"}' }), ['{\n  "k": "v"\n}']);
    assert.deepEqual(outputMessages({ string: 'plain' }), ['plain']);
    assert.deepEqual(outputMessages({ int: 7 }), ['7']);
    assert.deepEqual(outputMessages({}), []);
  });

  it('writes trigger metadata dates as the host serialises DateTimeOffset', () => {
    assert.equal(dotnetDate(new Date('2026-01-02T03:04:05Z')), '2026-01-02T03:04:05+00:00');
    assert.equal(dotnetDate(new Date('2026-01-02T03:04:05.250Z')), '2026-01-02T03:04:05.250+00:00');
  });

  it('decodes strict base64 only', () => {
    assert.equal(decodeMessage(Buffer.from('{"a":1}').toString('base64'), 'base64'), '{"a":1}');
    assert.equal(decodeMessage('not base64!', 'base64'), undefined);
    assert.equal(decodeMessage('abc', 'base64'), undefined);
    assert.equal(decodeMessage('raw text', 'none'), 'raw text');
  });
});

describe('devhost timers', () => {
  it('reads six-field and five-field NCRONTAB, TimeSpans and %settings%', () => {
    const at = new Date(2026, 0, 1, 10, 15, 3);
    assert.equal(parseSchedule('0 0 * * * *').next(at).getTime(), new Date(2026, 0, 1, 11, 0, 0).getTime());
    assert.equal(parseSchedule('*/10 * * * * *').next(at).getTime(), new Date(2026, 0, 1, 10, 15, 10).getTime());
    assert.equal(parseSchedule('30 2 * * *').next(at).getTime(), new Date(2026, 0, 2, 2, 30, 0).getTime());
    assert.equal(parseSchedule('00:05:00').next(at).getTime(), at.getTime() + 300_000);
    assert.equal(parseSchedule('%SCHEDULE%', { SCHEDULE: '0 */5 * * * *' }).text, '0 */5 * * * *');
    assert.throws(() => parseSchedule('%MISSING%', {}), /app setting 'MISSING'/);
    assert.throws(() => parseSchedule('every hour'), /not a valid NCRONTAB/);
  });

  it('keeps schedule status only for schedules of a minute or more, as the host does', () => {
    assert.equal(usesMonitor(parseSchedule('*/10 * * * * *'), undefined), false);
    assert.equal(usesMonitor(parseSchedule('0 0 * * * *'), undefined), true);
    assert.equal(usesMonitor(parseSchedule('0 0 * * * *'), false), false);
  });
});

describe('devhost HTTP routing and keys', () => {
  const fn = (bindings: Record<string, unknown>) => ({
    metadata: { name: 'f', bindings: { t: { type: 'httpTrigger', direction: 'in' as const, ...bindings } } },
    callback: () => undefined,
  });

  it('matches templates with parameters, constraints and optional segments, case-insensitively', () => {
    const route = compileRoute(fn({ route: 'Studies/{id}/run/{n:int?}' }))!;
    assert.deepEqual(matchRoute(route, ['studies', 'abc', 'RUN']), { id: 'abc' });
    assert.deepEqual(matchRoute(route, ['studies', 'abc', 'run', '3']), { id: 'abc', n: '3' });
    assert.equal(matchRoute(route, ['studies', 'abc', 'run', 'x']), undefined);
    assert.equal(matchRoute(route, ['studies', 'abc']), undefined);
    assert.deepEqual(compileRoute(fn({}))!.methods, ['GET', 'POST']);
    assert.equal(compileRoute(fn({}))!.template, 'f', 'the route defaults to the function name');
    assert.throws(() => compileRoute(fn({ route: 'admin/x' })), /reserved/);
  });

  it('matches catch-all templates and tries specific templates first', () => {
    const rest = compileRoute(fn({ route: 'files/{*path}' }))!;
    assert.deepEqual(matchRoute(rest, ['files', 'a', 'b%20c.txt']), { path: 'a/b c.txt' });
    assert.deepEqual(matchRoute(rest, ['files']), {});
    const byId = compileRoute(fn({ route: 'items/{id}' }))!;
    const search = compileRoute(fn({ route: 'items/search' }))!;
    const typed = compileRoute(fn({ route: 'items/{n:int}' }))!;
    assert.deepEqual(
      [byId, typed, search].sort(compareRoutes).map((r) => r.template),
      ['items/search', 'items/{n:int}', 'items/{id}'],
    );
  });

  it('creates a keys file with random keys once, and reads the host own secrets shape', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keys-'));
    const lines: string[] = [];
    const file = path.join(dir, 'nested', 'secrets.json');
    const created = loadKeys(file, (l) => lines.push(l));
    assert.match(
      lines.join('\n'),
      new RegExp(`Created function keys in ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    );
    assert.notEqual(created.masterKey, created.functionKeys.default);
    assert.deepEqual(
      loadKeys(file, () => undefined),
      created,
      'reused, not regenerated',
    );
    writeFileSync(
      file,
      JSON.stringify({ masterKey: { name: 'master', value: 'M' }, functionKeys: [{ name: 'default', value: 'F' }] }),
    );
    assert.deepEqual(
      loadKeys(file, () => undefined),
      { masterKey: 'M', functionKeys: { default: 'F' } },
    );
    writeFileSync(file, JSON.stringify({ functionKeys: {} }));
    assert.throws(() => loadKeys(file, () => undefined), /"masterKey" is missing/);
  });

  it('accepts function keys for function level and only the master key for admin level', () => {
    const keys = { masterKey: 'M', functionKeys: { default: 'F' } };
    assert.equal(authorised('anonymous', undefined, keys), true);
    assert.equal(authorised('function', 'F', keys), true);
    assert.equal(authorised('function', 'M', keys), true);
    assert.equal(authorised('function', undefined, keys), false);
    assert.equal(authorised('admin', 'F', keys), false);
    assert.equal(authorised('admin', 'M', keys), true);
  });

  it('compares keys by digest in constant time: equal only when identical, never when empty', () => {
    const key = 'k'.repeat(40);
    assert.equal(sameKey(key, key), true);
    assert.equal(sameKey(`${key.slice(0, -1)}x`, key), false, 'last character differs');
    assert.equal(sameKey(`x${key.slice(1)}`, key), false, 'first character differs');
    assert.equal(sameKey(key.slice(0, 10), key), false, 'a prefix of the key');
    assert.equal(sameKey(`${key}k`, key), false, 'longer than the key (timingSafeEqual alone would throw)');
    assert.equal(sameKey('', ''), false);
    assert.equal(sameKey(undefined, key), false);
    assert.equal(sameKey(key, undefined), false);
    assert.equal(sameKey('Müller', 'Müller'), true, 'UTF-8 keys');
  });

  it('recognises loopback Host names only (DNS rebinding)', () => {
    for (const name of [
      'localhost',
      'localhost:7071',
      'LocalHost.',
      'a.b.localhost:1',
      '127.0.0.1',
      '127.0.0.1:80',
      '127.255.0.9:1',
      '[::1]',
      '[::1]:7071',
      '[0:0:0:0:0:0:0:1]:1',
    ])
      assert.equal(loopbackHost(name), true, name);
    for (const name of [
      undefined,
      '',
      ' ',
      'example.com',
      'localhost.example.com',
      'localhost:abc',
      '127.0.0.1.nip.io',
      '127.0.0.1:7071@evil',
      '0.0.0.0',
      '10.0.0.1',
      '128.0.0.1',
      '[::ffff:127.0.0.1]',
      '[::2]',
      'local host',
      'localhost/x',
    ])
      assert.equal(loopbackHost(name), false, String(name));
    assert.equal(loopbackHost('proxy.internal:8080', ['Proxy.Internal']), true, 'an allowed name, case-insensitively');
    assert.equal(loopbackHost('other.internal', ['proxy.internal', '']), false);
  });
});
