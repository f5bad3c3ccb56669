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
import { createRedaction, studyPhiLookup, type Redaction } from '../pipeline/redact';
import type { EchoState } from '../orthanc/destinations';

export interface Services {
  config: Config;
  orthanc: OrthancClient;
  ledger: Ledger;
  queues: QueueSender;
  rules: AppRulesPort;
  naming: OutputNaming;
  telemetry: Telemetry;
  /** AUTOMATION_LOG_PHI's rewriting of errors and log lines, one for the process. */
  redaction: Redaction;
  /** Each destination's last C-ECHO at start-up, by name, for the status report. */
  destinationEchoes: Map<string, EchoState>;
}

let services: Promise<Services> | undefined;

export async function buildServices(config: Config): Promise<Services> {
  const orthanc = createOrthancClient({
    url: config.orthanc.url,
    username: config.orthanc.username,
    password: config.orthanc.password,
    timeoutMs: config.orthanc.timeoutMs,
  });
  const rules = createRulesPort(config.rulesPath, orthanc);
  const naming = createOutputNaming(createPseudonymiser(config));
  return {
    config,
    orthanc,
    ledger: await createLedger(config.storageConnectionString),
    queues: createQueueSender(config.storageConnectionString),
    rules,
    naming,
    telemetry: await createTelemetry(config.applicationInsightsConnectionString),
    redaction: createRedaction({
      storagePath: config.storagePath,
      logPhi: config.logPhi,
      knownPhi: studyPhiLookup(orthanc, naming),
    }),
    destinationEchoes: new Map(),
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
