/**
 * The Part 10 wrapper around a dataset: files without a meta header (which Orthanc accepts and
 * stores as they came) get one before parsing, and every output gets a meta header of our own,
 * with nothing of the sender's left in it.
 */
import dcmjs, { type DicomDataset, type DicomElement } from 'dcmjs';
import { firstText } from './values';

const { DicomDict } = dcmjs.data;

/** Our implementation's identity in every file we write (a UUID-derived UID, PS3.5 B.2). */
export const IMPLEMENTATION_CLASS_UID = '2.25.327502966260728894760719045894437234941';
export const IMPLEMENTATION_VERSION_NAME = 'AUTORTHANC_FN_1';

export const IMPLICIT_LE = '1.2.840.10008.1.2';
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
export const EXPLICIT_BE = '1.2.840.10008.1.2.2';
export const DEFLATED_EXPLICIT_LE = '1.2.840.10008.1.2.1.99';

const VRS = new Set([
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'PN',
  'SH',
  'SL',
  'SQ',
  'SS',
  'ST',
  'SV',
  'TM',
  'UC',
  'UI',
  'UL',
  'UN',
  'UR',
  'US',
  'UT',
  'UV',
]);

export function hasPart10Header(input: Buffer): boolean {
  return input.length >= 132 && input.toString('latin1', 128, 132) === 'DICM';
}

/**
 * The transfer syntax of a bare dataset, from its first element as DCMTK guesses it: the byte
 * order that gives the smaller group number, explicit when a valid VR follows the tag.
 */
export function detectTransferSyntax(dataset: Buffer): string | undefined {
  if (dataset.length < 8) return undefined;
  const littleEndian = dataset.readUInt16LE(0) <= dataset.readUInt16BE(0);
  const explicit = VRS.has(dataset.toString('latin1', 4, 6));
  if (littleEndian) return explicit ? EXPLICIT_LE : IMPLICIT_LE;
  return explicit ? EXPLICIT_BE : undefined; // there is no implicit big endian
}

/** VRs whose explicit encoding has two reserved bytes and a 4-byte length (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** The file meta group of a Part 10 buffer: where the dataset starts, and the transfer syntax if given. */
function scanMeta(input: Buffer): {
  datasetStart: number;
  groupLength: boolean;
  implicit: boolean;
  transferSyntax?: string;
} {
  let offset = 132;
  let groupLength = false;
  let anyImplicit = false;
  let transferSyntax: string | undefined;
  while (offset + 8 <= input.length && input.readUInt16LE(offset) === 0x0002) {
    const element = input.readUInt16LE(offset + 2);
    const vr = input.toString('latin1', offset + 4, offset + 6);
    // Some writers encode the meta group in implicit VR (against PS3.10 7.1): tag, 4-byte length.
    const implicit = !VRS.has(vr);
    const long = !implicit && LONG_VRS.has(vr);
    const length = implicit
      ? input.readUInt32LE(offset + 4)
      : long
        ? input.readUInt32LE(offset + 8)
        : input.readUInt16LE(offset + 6);
    const start = offset + (long ? 12 : 8);
    anyImplicit ||= implicit;
    if (element === 0x0000) groupLength = true;
    if (element === 0x0010) transferSyntax = input.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
    offset = start + length;
  }
  return { datasetStart: offset, groupLength, implicit: anyImplicit, transferSyntax };
}

/** The transfer syntax a Part 10 file's meta header names, or undefined (no header, none named). */
export function part10TransferSyntax(input: Buffer): string | undefined {
  return hasPart10Header(input) ? scanMeta(input).transferSyntax : undefined;
}

function withMinimalMeta(dataset: Buffer, syntax: string): Buffer {
  const meta = new DicomDict({
    '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] },
    '00020010': { vr: 'UI', Value: [syntax] },
  });
  return Buffer.concat([Buffer.from(meta.write()), dataset]);
}

/**
 * A Part 10 buffer dcmjs can read: `input` itself when its meta header is complete; else a minimal
 * meta header (version and transfer syntax; the rest is rewritten on output) followed by the
 * dataset. That covers a bare dataset without preamble or meta (which Orthanc accepts and stores as
 * it came), and a meta group without its group length or transfer syntax. `transferSyntax` is what
 * Orthanc reports for the instance, when the caller knows it; otherwise it is read from the dataset.
 */
export function asPart10(input: Buffer, transferSyntax?: string): { buffer: Buffer; addedHeader?: string } {
  if (hasPart10Header(input)) {
    const meta = scanMeta(input);
    if (meta.groupLength && meta.transferSyntax && !meta.implicit) return { buffer: input };
    const dataset = input.subarray(meta.datasetStart);
    const syntax = meta.transferSyntax || transferSyntax?.trim() || detectTransferSyntax(dataset);
    if (!syntax) throw new Error('an incomplete meta header and no recognisable transfer syntax');
    return { buffer: withMinimalMeta(dataset, syntax), addedHeader: syntax };
  }
  const syntax = transferSyntax?.trim() || detectTransferSyntax(input);
  if (!syntax) throw new Error('no Part 10 header and no recognisable transfer syntax');
  if (input.length >= 2 && input.readUInt16LE(0) === 0x0002)
    throw new Error('a file meta group without the Part 10 preamble is not supported');
  return { buffer: withMinimalMeta(input, syntax), addedHeader: syntax };
}

const KEPT_META = new Set(['00020001', '00020002', '00020003', '00020010', '00020012', '00020013']);

function uidElement(value: string): DicomElement {
  return { vr: 'UI', Value: [value] };
}

/**
 * The output's meta header: version, SOP Class and (new) SOP Instance UID, transfer syntax, and our
 * implementation; source/sending/receiving AE titles, presentation addresses, RTV and private meta
 * information are dropped. Returns how many meta elements were dropped.
 */
export function rewriteMeta(
  meta: DicomDataset,
  dataset: DicomDataset,
  writtenSyntax: string,
): { meta: DicomDataset; dropped: number } {
  const sopClass = (firstText(dataset['00080016']) || firstText(meta['00020002'])).trim();
  const sop = firstText(dataset['00080018']).trim();
  const out: DicomDataset = { '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] } };
  if (sopClass) out['00020002'] = uidElement(sopClass);
  if (sop) out['00020003'] = uidElement(sop);
  out['00020010'] = uidElement(writtenSyntax);
  out['00020012'] = uidElement(IMPLEMENTATION_CLASS_UID);
  out['00020013'] = { vr: 'SH', Value: [IMPLEMENTATION_VERSION_NAME] };
  const dropped = Object.keys(meta).filter((tag) => !KEPT_META.has(tag.toUpperCase()) && tag !== '00020000').length;
  return { meta: out, dropped };
}
