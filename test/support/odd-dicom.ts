/**
 * DICOM that is valid enough for Orthanc to store but unusual: other transfer syntaxes (rewritten by
 * dcmtk's `dcmconv`), ISO 2022 multi-valued character sets, private sequences, pixel data shorter
 * than the image or a file cut off in the middle. Each helper rewrites generated files in place.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import dcmjs from 'dcmjs';
import { requireBinary } from './process';

const run = promisify(execFile);
const { DicomMessage, DicomMetaDictionary, DicomDict } = dcmjs.data;

export const TRANSFER_SYNTAX = {
  implicitLittleEndian: '1.2.840.10008.1.2',
  explicitBigEndian: '1.2.840.10008.1.2.2',
  deflatedExplicitLittleEndian: '1.2.840.10008.1.2.1.99',
} as const;

const DCMCONV_FLAG: Record<keyof typeof TRANSFER_SYNTAX, string> = {
  implicitLittleEndian: '+ti',
  explicitBigEndian: '+tb',
  deflatedExplicitLittleEndian: '+td',
};

/** Rewrites a file in another (uncompressed) transfer syntax with dcmtk's dcmconv. */
export async function convertTransferSyntax(file: string, syntax: keyof typeof TRANSFER_SYNTAX): Promise<void> {
  requireBinary('dcmconv', 'dcmtk');
  await run('dcmconv', [DCMCONV_FLAG[syntax], file, file]);
}

type Dataset = Record<string, { vr: string; Value?: unknown[]; InlineBinary?: string }>;

/** Reads, changes the raw (hex-keyed) dataset and writes back a Part-10 file (Explicit VR Little Endian). */
export function editDataset(file: string, change: (dict: Dataset) => void): void {
  const bytes = readFileSync(file);
  const message = DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  change(message.dict);
  const out = new DicomDict(message.meta);
  out.dict = message.dict;
  writeFileSync(file, Buffer.from(out.write()));
}

/**
 * PS3.5 H.3.1's example: a Japanese name in ISO 2022 IR 87 (JIS X 0208 with escape sequences) under
 * SpecificCharacterSet `\ISO 2022 IR 87` (two values, the first empty = ISO 2022 IR 6).
 */
export const ISO2022_JAPANESE_NAME =
  'Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B';

export function useIso2022Japanese(file: string): void {
  editDataset(file, (dict) => {
    dict['00080005'] = { vr: 'CS', Value: ['ISO 2022 IR 6', 'ISO 2022 IR 87'] };
    dict['00100010'] = { vr: 'PN', Value: [ISO2022_JAPANESE_NAME] };
  });
  // dcmjs writes PN values as objects or strings depending on version; check the escapes survived.
  if (!readFileSync(file).includes(Buffer.from('\x1b$B', 'latin1')))
    throw new Error(`${file}: the ISO 2022 escapes were not written`);
}

/** A private creator with a private sequence holding nested private and standard elements. */
export function addPrivateSequence(file: string): void {
  editDataset(file, (dict) => {
    dict['00310010'] = { vr: 'LO', Value: ['ODD VENDOR SEQ'] };
    dict['00311001'] = {
      vr: 'SQ',
      Value: [
        {
          '00310010': { vr: 'LO', Value: ['ODD VENDOR SEQ'] },
          '00311002': { vr: 'LO', Value: ['nested private text'] },
          '00100020': { vr: 'LO', Value: ['NESTED-ID'] },
        },
        { '00311003': { vr: 'SQ', Value: [{ '00311004': { vr: 'UT', Value: ['deeper'] } }] } },
      ],
    };
  });
}

/** Pixel data with fewer bytes than Rows x Columns x BitsAllocated ask for (a well-formed element). */
export function shortenPixelData(file: string, keepBytes = 512): void {
  editDataset(file, (dict) => {
    const pixel = dict['7FE00010'] as { vr: string; Value: ArrayBuffer[] };
    pixel.Value = [pixel.Value[0].slice(0, keepBytes)];
  });
}

/** Cuts the file off `dropBytes` before its end, in the middle of the pixel data element. */
export function cutOff(file: string, dropBytes = 1000): void {
  truncateSync(file, statSync(file).size - dropBytes);
}

export { DicomMetaDictionary };
