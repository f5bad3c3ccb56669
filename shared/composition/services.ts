/**
 * The composition root: builds the domain's dependencies once per process from the configuration.
 * Functions ask for them here; tests build the same pieces directly with their own settings.
 */
import { getConfig, type Config } from '../config';
import { createOrthancClient, type OrthancClient } from '../orthanc/client';
import type { AwaitedResults, Cursors, JobStore, OutputLocks } from '../pipeline/ports';
import { createOutputNaming, type OutputNaming } from '../pipeline/naming';
import { createQueueSender, type QueueSender } from '../storage/queues';
import { openTableStorage } from '../storage/tableStorage';
import { createRulesPort, type AppRulesPort } from './rules-port';
import { createPseudonymiser } from './pseudonymiser';
import { createTelemetry, type Telemetry } from '../telemetry';
import { createRedaction, redactedLogger, studyPhiLookup, type Redaction } from '../pipeline/redact';
import type { EchoState } from '../orthanc/destinations';
import { createStowClient, type StowClient } from '../dicomweb/stow';
import { createTableBookingStore } from '../storage/tableBookings';
import type { BookingStore } from '../worklist/store';
import { createAlerts, type Alerts } from '../alerts/alerts';
import { createDestinationCatalog, type DestinationCatalog } from '../destinations/catalog';
import { createTableDestinationStore } from '../storage/tableDestinations';
import { createFairShare, type FairShare } from '../util/fair-share';

export interface Services {
  config: Config;
  orthanc: OrthancClient;
  /** The job ledger's three ports, on one Azure Table. */
  jobs: JobStore;
  outputLocks: OutputLocks;
  cursors: Cursors;
  /** Jobs whose rules expect results back (ExpectResults), by forwarded study. */
  awaitedResults: AwaitedResults;
  queues: QueueSender;
  rules: AppRulesPort;
  naming: OutputNaming;
  telemetry: Telemetry;
  /** AUTOMATION_LOG_PHI's rewriting of errors and log lines, one for the process. */
  redaction: Redaction;
  /** Each destination's last C-ECHO at start-up, by name, for the status report. */
  destinationEchoes: Map<string, EchoState>;
  /** STOW-RS clients of the DICOMweb destinations (DICOMWEB_<NAME>), by name. */
  dicomweb: Record<string, StowClient>;
  /** The worklist's booking records (their own table). */
  bookings: BookingStore;
  /** Webhook alerts (AUTOMATION_ALERT_WEBHOOKS), rate-limited through Table storage; never throws. */
  alerts: Alerts;
  /** Every destination: the environment's (read-only) and the dashboard's (their own table); `all()` for Orthanc. */
  destinations: DestinationCatalog;
  /** AUTOMATION_DOWNLOAD_CONCURRENCY slots for instance files, shared fairly by every download of the process. */
  instanceFiles: FairShare;
}

let services: Promise<Services> | undefined;

export async function buildServices(config: Config): Promise<Services> {
  const orthanc = createOrthancClient({
    url: config.orthanc.url,
    username: config.orthanc.username,
    password: config.orthanc.password,
    timeoutMs: config.orthanc.timeoutMs,
  });
  const bookings = await createTableBookingStore(config.storageConnectionString);
  const rules = createRulesPort(config.rulesPath, orthanc, bookings);
  const naming = createOutputNaming(createPseudonymiser(config));
  const { jobs, outputLocks, cursors, alertClaims, awaitedResults } = await openTableStorage(
    config.storageConnectionString,
  );
  const redaction = createRedaction({
    storagePath: config.storagePath,
    logPhi: config.logPhi,
    knownPhi: studyPhiLookup(orthanc, naming),
  });
  return {
    config,
    orthanc,
    jobs,
    outputLocks,
    cursors,
    awaitedResults,
    queues: createQueueSender(config.storageConnectionString),
    rules,
    naming,
    telemetry: await createTelemetry(config.applicationInsightsConnectionString),
    redaction,
    alerts: createAlerts({
      webhooks: config.alerts.webhooks,
      minIntervalSeconds: config.alerts.minIntervalSeconds,
      claims: alertClaims,
      // Built once per process, so its lines go to the host's console rather than one invocation's log.
      log: redactedLogger(console, redaction.anywhere),
      redact: redaction.anywhere,
    }),
    destinationEchoes: new Map(),
    destinations: createDestinationCatalog({
      modalities: config.modalities,
      dicomweb: config.dicomweb,
      store: await createTableDestinationStore(config.storageConnectionString),
      // A dashboard DICOMweb destination's credentials are settings, read at each send.
      env: process.env,
      stowTimeoutMs: config.orthanc.timeoutMs,
    }),
    bookings,
    instanceFiles: createFairShare(config.downloadConcurrency),
    dicomweb: Object.fromEntries(
      Object.entries(config.dicomweb).map(([name, definition]) => [
        name,
        createStowClient(definition, config.orthanc.timeoutMs),
      ]),
    ),
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
