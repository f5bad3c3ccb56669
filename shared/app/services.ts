/**
 * The composition root: builds the domain's dependencies once per process from the configuration.
 * Functions ask for them here; tests build the same pieces directly with their own settings.
 */
import { getConfig, type Config } from '../config';
import { createOrthancClient, type OrthancClient } from '../orthanc/client';
import { createLedger, type Ledger } from '../pipeline/ledger';
import { createOutputNaming, type OutputNaming } from '../pipeline/naming';
import { createQueueSender, type QueueSender } from '../storage/queues';
import { createRulesPort, type AppRulesPort } from './rules-port';
import { createPseudonymiser } from './pseudonymiser';
import { createTelemetry, type Telemetry } from '../telemetry';

export interface Services {
  config: Config;
  orthanc: OrthancClient;
  ledger: Ledger;
  queues: QueueSender;
  rules: AppRulesPort;
  naming: OutputNaming;
  telemetry: Telemetry;
}

let services: Promise<Services> | undefined;

export async function buildServices(config: Config): Promise<Services> {
  const orthanc = createOrthancClient({ url: config.orthanc.url, username: config.orthanc.username, password: config.orthanc.password, timeoutMs: config.orthanc.timeoutMs });
  const rules = createRulesPort(config.rulesPath, orthanc);
  return {
    config,
    orthanc,
    ledger: await createLedger(config.storageConnectionString),
    queues: createQueueSender(config.storageConnectionString),
    rules,
    naming: createOutputNaming(createPseudonymiser(config)),
    telemetry: await createTelemetry(config.applicationInsightsConnectionString),
  };
}

/** The process-wide services; a failure (bad settings, storage down) is retried on the next call. */
export function getServices(): Promise<Services> {
  if (!services) {
    services = buildServices(getConfig());
    services.catch(() => {
      services = undefined;
    });
  }
  return services;
}
