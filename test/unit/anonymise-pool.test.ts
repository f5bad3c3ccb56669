/**
 * The anonymiser's worker threads give what the anonymiser gives on this thread: the same bytes,
 * record, UIDs and warnings for every file (identity mapping included, rebuilt in the worker), the
 * same error message for a file it cannot read, and files of two anonymisers side by side.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { createAnonymisePool, type AnonymisePool } from '../../shared/dicom/anonymise-pool';
import { parseIdentityMapping } from '../../shared/dicom/mapping';
import { anonymiseSettingsSchema } from '../../shared/dicom/options';
import { generateStudy, type GeneratedStudy } from '../support/dicom';

describe('anonymise pool', { timeout: 120_000 }, () => {
  let study: GeneratedStudy;
  let pool: AnonymisePool;
  before(async () => {
    study = await generateStudy({
      patientID: 'POOL-1',
      privateTags: true,
      nestedSequences: true,
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 3 },
        { seriesNumber: 2, modality: 'CT', instances: 2 },
      ],
    });
    pool = createAnonymisePool(2);
  });

  it('gives the same result as this thread, for two anonymisers at once', async () => {
    const keyed = createAnonymiser({ secret: 'pool-test', settings: anonymiseSettingsSchema.parse({}) });
    const mapped = createAnonymiser({
      secret: 'pool-test',
      settings: anonymiseSettingsSchema.parse({ Identity: 'mapping', MappingFile: 'map.csv' }),
      mapping: parseIdentityMapping('POOL-1,STUDY-007\n', 'map.csv'),
    });
    const files = study.series.flatMap((s) => s.files.map((f) => f.path));
    for (const anonymiser of [keyed, mapped]) {
      const results = await Promise.all(
        files.map(async (file) => {
          const here = anonymiser.anonymiseBuffer(readFileSync(file), 'x.dcm');
          const there = await pool.anonymise(anonymiser, readFileSync(file), 'x.dcm');
          return { here, there };
        }),
      );
      for (const { here, there } of results) {
        const { output, ...hereRest } = here;
        const { chunks, ...thereRest } = there;
        assert.ok(Buffer.concat(chunks!).equals(output!), 'the same bytes');
        assert.deepEqual(thereRest, hereRest, 'the same record, UIDs and warnings');
      }
    }
    assert.equal(mapped.pseudonymOf('POOL-1'), 'STUDY-007', 'the mapping was in use');
  });

  it("passes on the anonymiser's error message for a file it cannot read", async () => {
    const anonymiser = createAnonymiser({ secret: 'pool-test', settings: anonymiseSettingsSchema.parse({}) });
    const junk = Buffer.from('not a DICOM file at all, just text');
    let here = '';
    try {
      anonymiser.anonymiseBuffer(junk, 'junk.dcm');
    } catch (error) {
      here = (error as Error).message;
    }
    assert.match(here, /^junk\.dcm: /);
    await assert.rejects(pool.anonymise(anonymiser, Buffer.from(junk), 'junk.dcm'), { message: here });
    assert.ok(pool.hasIdleWorker(), 'the worker is free again after a failed file');
  });
});
