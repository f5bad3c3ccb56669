/**
 * Real files through real Orthanc 1.10.1 and back: pydicom's character-set files (ISO 2022 code
 * extensions among them) and its files without a Part 10 meta header are stored in Orthanc,
 * fetched as the pipeline fetches them (`/instances/{id}/file`, plus the `TransferSyntax` metadata),
 * anonymised, and stored again: Orthanc must accept every output, read it as UTF-8 with no escape
 * sequence left, and read the kept text as pydicom reads the original.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { anonymiseSettingsSchema } from '../../shared/dicom/options';
import { detectTransferSyntax, hasPart10Header } from '../../shared/dicom/part10';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { readAll } from '../support/bytes';
import { startOrthanc, type OrthancServer } from '../support/orthanc';

const DATA = '/usr/lib/python3/dist-packages/pydicom/data';
const ISO_2022 = [
  'chrH31.dcm',
  'chrH32.dcm',
  'chrI2.dcm',
  'chrJapMulti.dcm',
  'chrJapMultiExplicitIR6.dcm',
  'chrKoreanMulti.dcm',
];
const NO_META = ['ExplVR_LitEndNoMeta.dcm', 'ExplVR_BigEndNoMeta.dcm'];

/** pydicom's reading of one attribute of a file: the reference decoder. */
function pydicomValue(file: string, keyword: string): string {
  const script =
    'import sys, pydicom\nfrom pydicom.multival import MultiValue\nds = pydicom.dcmread(sys.argv[1], force=True)\nds.decode()\nv = ds.get(sys.argv[2], "")\nprint("\\\\".join(str(x) for x in v) if isinstance(v, MultiValue) else str(v))';
  return execFileSync('/usr/bin/python3', ['-c', script, file, keyword], { encoding: 'utf8' }).replace(/\n$/, '');
}

describe('anonymiser on real files stored in Orthanc', { timeout: 180_000 }, () => {
  let orthanc: OrthancServer;
  let client: OrthancClient;
  before(async () => {
    orthanc = await startOrthanc();
    client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
  });
  after(async () => orthanc?.stop());

  async function store(bytes: Buffer): Promise<string | undefined> {
    try {
      return (
        await client.raw<{ ID: string }>(
          'POST',
          '/instances',
          { data: bytes, headers: { 'Content-Type': 'application/dicom' } },
          false,
        )
      ).data.ID;
    } catch {
      return undefined; // Orthanc refuses it: not a file the pipeline can ever receive
    }
  }

  it('anonymises every charset and no-meta file Orthanc accepts, into files Orthanc accepts and reads as UTF-8', async () => {
    const files = [
      ...readdirSync(path.join(DATA, 'charset_files'))
        .filter((f) => f.endsWith('.dcm'))
        .map((f) => path.join(DATA, 'charset_files', f)),
      ...NO_META.map((f) => path.join(DATA, 'test_files', f)),
    ];
    const anonymiser = createAnonymiser({
      secret: 'real-files',
      settings: anonymiseSettingsSchema.parse({
        BurnedInAnnotation: 'warn',
        Keep: ['OperatorsName', 'OtherPatientNames'],
      }),
    });
    const accepted: string[] = [];
    const refused: string[] = [];
    for (const file of files) {
      const name = path.basename(file);
      const id = await store(readFileSync(file));
      if (id === undefined) {
        refused.push(name);
        continue;
      }
      accepted.push(name);
      const stored = await readAll(await client.instanceFile(id));
      const syntax = (
        await client.raw<string>('GET', `/instances/${id}/metadata/TransferSyntax`, {
          responseType: 'text',
          transformResponse: (x: unknown) => x,
        })
      ).data.trim();
      if (NO_META.includes(name)) {
        assert.ok(!hasPart10Header(stored), `${name}: Orthanc returns the file as it was stored, without a header`);
        assert.equal(detectTransferSyntax(stored), syntax, `${name}: our reading of the syntax agrees with Orthanc's`);
      }
      // Same SOP Instance UID in both no-meta files: remove each before the next.
      await client.raw('DELETE', `/instances/${id}`);
      const out = anonymiser.anonymiseBuffer(stored, name, { transferSyntax: syntax });
      assert.ok(out.output, name);
      const again = await store(out.output);
      assert.ok(again, `${name}: Orthanc accepts the anonymised file`);
      const meta = (
        await client.raw<string>('GET', `/instances/${again}/metadata/TransferSyntax`, {
          responseType: 'text',
          transformResponse: (x: unknown) => x,
        })
      ).data.trim();
      assert.equal(meta, syntax, `${name}: written in the transfer syntax it was read in`);
      const tags = (await client.raw<Record<string, unknown>>('GET', `/instances/${again}/simplified-tags`)).data;
      assert.equal(tags.SpecificCharacterSet, 'ISO_IR 192', name);
      if (pydicomValue(file, 'PatientName') !== '')
        assert.equal(tags.PatientName, anonymiser.pseudonymOf(pydicomValue(file, 'PatientID')), name);
      const text = JSON.stringify(tags);
      assert.ok(!text.includes('\\u001b'), `${name}: no escape sequence in what Orthanc reads`);
      for (const keyword of ['OperatorsName', 'OtherPatientNames']) {
        const reference = pydicomValue(file, keyword);
        if (reference === '') continue;
        assert.equal(
          typeof tags[keyword] === 'string' ? tags[keyword] : '',
          reference,
          `${name} ${keyword}: Orthanc reads our output as pydicom reads the original`,
        );
      }
      await client.raw('DELETE', `/instances/${again}`);
    }
    console.log(
      `anonymiser-real-files: ${accepted.length} accepted by Orthanc and anonymised (${accepted.join(' ')}); refused by Orthanc: ${refused.join(' ') || 'none'}`,
    );
    for (const name of [...ISO_2022, ...NO_META]) assert.ok(accepted.includes(name), `Orthanc accepted ${name}`);
  });
});
