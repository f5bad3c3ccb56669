/**
 * Child process of test/integration/anonymise-memory.test.ts (and of the bench's memory rows):
 * anonymises a warm-up folder (so worker threads and compiled code are in place), resets the
 * kernel's peak RSS counter, anonymises the folder given, and prints the peak RSS above the
 * resident memory it started from, in bytes, as JSON. Usage: anonymise-rss.ts <warm-up> <folder>
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { anonymiseFolder } from '../../shared/dicom/folder';
import { anonymiseSettingsSchema } from '../../shared/dicom/options';

const kib = (field: string) =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) * 1024;

async function main(): Promise<void> {
  const [warmUp, folder] = process.argv.slice(2);
  const anonymiser = createAnonymiser({ secret: 'rss', settings: anonymiseSettingsSchema.parse({}) });
  await anonymiseFolder(warmUp, anonymiser, { concurrency: 4 });
  global.gc?.();
  writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
  const before = kib('VmRSS');
  const started = process.hrtime.bigint();
  const result = await anonymiseFolder(folder, anonymiser, { concurrency: 4 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    JSON.stringify({ before, peak: kib('VmHWM'), instances: result.instances, bytesIn: result.bytesIn, seconds }),
  );
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(error.message);
    process.exit(1);
  },
);
