/**
 * Starts the Orthanc that ORTHANC_FLAVOUR picks, as the tests will, and prints its version from
 * GET /system: scripts/run-tests.sh runs this once before suites that talk to Orthanc, so each test
 * run's log says which Orthanc it ran against, and a missing or wrong Orthanc fails the run at once.
 */
import { orthancFlavourName } from './orthancFlavour';
import { startOrthanc } from './orthanc';

async function main(): Promise<void> {
  const orthanc = await startOrthanc();
  try {
    process.stdout.write(`Orthanc version: ${orthanc.version}\n`);
    process.stdout.write(
      `run-tests: ORTHANC_FLAVOUR=${orthancFlavourName()} (REST API version ${orthanc.apiVersion})\n`,
    );
  } finally {
    await orthanc.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`run-tests: cannot start the Orthanc of this run: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
