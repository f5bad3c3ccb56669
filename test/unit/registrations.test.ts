/**
 * The app's registrations, read the way the worker reads them (devhost's `@azure/functions-core`
 * shim, no host started): every function in functions/ spells its name and its queue, route or
 * schedule as a literal, so a grep finds it; the literals must still agree with the names the code
 * computes (QUEUES), or a step would listen where nobody sends.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CoreRegistry, activateRegistry, type RegisteredFunction } from '../../devhost/core';
import { registeredSteps } from '../../shared/azure-functions/steps';
import { PIPELINE_STEPS } from '../../shared/vocabulary';
import { QUEUES } from '../../shared/pipeline/messages';

const FUNCTIONS_DIR = path.join(__dirname, '..', '..', 'functions');
const files = readdirSync(FUNCTIONS_DIR)
  .filter((f) => f.endsWith('.ts'))
  .sort();

const registry = new CoreRegistry(() => undefined);
const deactivate = activateRegistry(registry);
const load = createRequire(__filename);
/** Which file registered each function: the registry's growth while that file loads. */
const fileOf = new Map<string, string>();
const hooksOf = new Map<string, number>();
for (const file of files) {
  const before = new Set(registry.functions.keys());
  const hooksBefore = registry.hooks.appStart.length;
  load(path.join(FUNCTIONS_DIR, file));
  for (const name of registry.functions.keys()) if (!before.has(name)) fileOf.set(name, file);
  if (registry.hooks.appStart.length > hooksBefore) hooksOf.set(file, registry.hooks.appStart.length - hooksBefore);
}

function trigger(fn: RegisteredFunction): Record<string, unknown> {
  const binding = Object.values(fn.metadata.bindings).find((b) => b.direction === 'in' && /Trigger$/i.test(b.type));
  assert.ok(binding, `${fn.metadata.name} has a trigger`);
  return binding;
}

function queueOf(name: string): string | undefined {
  const fn = registry.functions.get(name);
  assert.ok(fn, `function ${name} is registered`);
  return trigger(fn).queueName as string | undefined;
}

describe('function registrations', () => {
  after(deactivate);

  it('registers step<Name> on step-<name> and step<Name>Poison on its poison queue, for every step', () => {
    for (const step of PIPELINE_STEPS) {
      const name = `step${step[0].toUpperCase()}${step.slice(1)}`;
      assert.equal(queueOf(name), QUEUES.step(step), `${name} listens on QUEUES.step('${step}')`);
      assert.equal(
        queueOf(`${name}Poison`),
        QUEUES.poison(QUEUES.step(step)),
        `${name}Poison listens on the poison queue of ${QUEUES.step(step)}`,
      );
      // A step hands on to whichever step comes next: every step queue is one of its outputs.
      const outputs = Object.values(registry.functions.get(name)!.metadata.bindings)
        .filter((b) => b.direction === 'out' && b.type === 'queue')
        .map((b) => b.queueName);
      assert.deepEqual(
        outputs.sort(),
        PIPELINE_STEPS.map((s) => QUEUES.step(s)).sort(),
        `${name} has an output binding per step queue`,
      );
    }
    assert.deepEqual([...registeredSteps].sort(), [...PIPELINE_STEPS].sort(), 'every step is available to evaluate');
    assert.equal(queueOf('evaluate'), QUEUES.evaluate);
    assert.equal(queueOf('evaluatePoison'), QUEUES.poison(QUEUES.evaluate));
  });

  it('spells every function name and its queue, route or schedule as a literal in its own file', () => {
    assert.ok(registry.functions.size >= 20, `the app registers its functions (${registry.functions.size})`);
    for (const [name, fn] of registry.functions) {
      const file = fileOf.get(name)!;
      const source = readFileSync(path.join(FUNCTIONS_DIR, file), 'utf8');
      assert.ok(source.includes(`'${name}'`), `functions/${file} names '${name}' as a literal`);
      const t = trigger(fn);
      const where = (t.queueName ?? t.route ?? t.schedule) as string | undefined;
      assert.ok(where, `${name} has a queue, route or schedule`);
      assert.ok(source.includes(`'${where}'`), `functions/${file} spells ${name}'s '${where}' as a literal`);
    }
  });

  it('keeps the start-up hooks in functions/appStart.ts only', () => {
    assert.deepEqual([...hooksOf], [['appStart.ts', 2]], 'the staging sweep and the destinations, both in appStart.ts');
    for (const file of files.filter((f) => f !== 'appStart.ts')) {
      assert.doesNotMatch(
        readFileSync(path.join(FUNCTIONS_DIR, file), 'utf8'),
        /app\.hook\./,
        `functions/${file} registers no hook`,
      );
    }
  });
});
