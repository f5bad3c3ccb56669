/**
 * The name of this function app instance, recorded on each step it runs: when several instances
 * share one storage account (scale-out), an operator sees which one ran, or was running, a step.
 * Azure sets WEBSITE_INSTANCE_ID per instance; elsewhere (compose replicas, several local hosts)
 * the host name and process id tell instances apart.
 */
import os from 'node:os';

export function hostInstanceName(env: NodeJS.ProcessEnv = process.env): string {
  const azure = env.WEBSITE_INSTANCE_ID?.trim();
  return azure ? azure : `${os.hostname()}:${process.pid}`;
}
