import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../shared/config';

/** The problems loadConfig names for an environment it must refuse. */
export function problemsFor(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail('expected loadConfig to reject the environment');
}
