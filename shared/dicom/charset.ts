/**
 * Reading text in every character set DICOM allows, including ISO 2022 code extensions (Japanese
 * `ISO 2022 IR 87/159/13`, Korean `IR 149`, Chinese `IR 58`, mixed Latin sets) and a Specific
 * Character Set that changes inside a sequence item. dcmjs decodes one set per file and refuses
 * code extensions, so for such files:
 * 1. dicom-parser locates every (0008,0005) in the file, at every depth;
 * 2. a copy of the file has those values blanked, so dcmjs decodes every string as windows-1252,
 *    which maps each of the 256 bytes to its own code point (nothing is lost);
 * 3. each string element gets its bytes back and is decoded by dicom-character-set with the
 *    character set in force for its dataset (its own, else its parent's), escape sequences included.
 * Every string then is Unicode, and the writer encodes it as UTF-8 under `ISO_IR 192`.
 * Files in one ordinary character set take dcmjs's own (faster) path.
 */
import dcmjs, { type DicomDataset, type DicomDict } from 'dcmjs';
import { convertBytes } from 'dicom-character-set';
import { parseDicom, type DataSet } from 'dicom-parser';
import { firstText } from './values';
import { EXPLICIT_LE, IMPLICIT_LE } from './part10';
import { PIXEL_DATA } from './write';

const { DicomMessage } = dcmjs.data;
const CHARSET = '00080005';
/** VRs whose values are decoded with the Specific Character Set (PS3.5 6.1.2.3). */
const ENCODED_VRS = new Set(['SH', 'LO', 'ST', 'LT', 'PN', 'UT', 'UC']);

const WINDOWS_1252 = new TextDecoder('latin1');
const BYTE_OF = new Map<number, number>();
for (let b = 0; b < 256; b += 1) BYTE_OF.set(WINDOWS_1252.decode(Uint8Array.of(b)).charCodeAt(0), b);

function bytesOf(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) out[i] = BYTE_OF.get(text.charCodeAt(i)) ?? 0x3f;
  return out;
}

/**
 * The bytes as an ArrayBuffer for dcmjs: the buffer's own when it spans all of it (a file read whole,
 * so a large file is not held twice while it is parsed; dcmjs copies the values it keeps), else a copy.
 */
function toArrayBuffer(buffer: Buffer): ArrayBuffer {
  if (buffer.byteOffset === 0 && buffer.byteLength === buffer.buffer.byteLength && buffer.buffer instanceof ArrayBuffer)
    return buffer.buffer;
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer;
}

function charsetOf(element: { _rawValue?: unknown; Value?: unknown[] } | undefined): string | undefined {
  if (!element) return undefined;
  const raw = Array.isArray(element._rawValue) ? element._rawValue : element.Value;
  return (raw ?? []).map((v) => String(v ?? '').trim()).join('\\');
}

/**
 * Datasets depth first, each with the sequence items under it; `inFileOrder` sorts by tag (dcmjs's
 * keys are not in file order: JavaScript puts integer-like keys such as "30060020" first).
 */
function* datasets(dataset: DicomDataset, inFileOrder = false): Generator<DicomDataset> {
  yield dataset;
  const tags = Object.keys(dataset);
  for (const tag of inFileOrder ? tags.sort() : tags) {
    const element = dataset[tag];
    if (element.vr === 'SQ')
      for (const item of (element.Value ?? []) as DicomDataset[]) yield* datasets(item, inFileOrder);
  }
}

/** True when dcmjs's single-set decoding cannot be trusted for this parsed file. */
function needsOwnDecoding(dataset: DicomDataset): boolean {
  const top = charsetOf(dataset[CHARSET]) ?? '';
  if (top.includes('2022')) return true;
  for (const d of datasets(dataset)) {
    if (d === dataset || d[CHARSET] === undefined) continue;
    if (charsetOf(d[CHARSET]) !== top) return true;
  }
  return false;
}

/** Every (0008,0005) of the file, depth first in file order, located by dicom-parser. */
function locateCharsets(buffer: Buffer): Array<{ offset: number; length: number; value: string }> {
  const found: Array<{ offset: number; length: number; value: string }> = [];
  const walk = (set: DataSet) => {
    for (const key of Object.keys(set.elements).sort()) {
      const element = set.elements[key];
      if (key === 'x00080005')
        found.push({
          offset: element.dataOffset,
          length: element.length,
          value: buffer
            .toString('latin1', element.dataOffset, element.dataOffset + element.length)
            .replace(/[\0 ]+$/, ''),
        });
      for (const item of element.items ?? []) if (item.dataSet) walk(item.dataSet);
    }
  };
  walk(parseDicom(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), { untilTag: 'x7fe00010' }));
  return found;
}

/** Every code extension, for text whose escape sequences name sets its (0008,0005) does not list. */
const ALL_EXTENSIONS = [
  'ISO 2022 IR 6',
  'ISO 2022 IR 100',
  'ISO 2022 IR 87',
  'ISO 2022 IR 159',
  'ISO 2022 IR 13',
  'ISO 2022 IR 149',
  'ISO 2022 IR 58',
].join('\\');

/**
 * Decodes as the declared set, then (as pydicom does) tolerates escape sequences to sets the file
 * did not declare, such as ESC ( B back to ASCII under `ISO 2022 IR 13\ISO 2022 IR 87`.
 */
function lenientDecode(charset: string, bytes: Uint8Array, vr: string, tag: string, warnings: string[]): string {
  for (const attempt of [charset, `${charset}\\ISO 2022 IR 6`, ALL_EXTENSIONS]) {
    try {
      return convertBytes(attempt, bytes, { vr });
    } catch {
      // next attempt
    }
  }
  warnings.push(
    `(${tag.slice(0, 4)},${tag.slice(4)}): text with undecodable escape sequences was read byte by byte as ISO_IR 100`,
  );
  return new TextDecoder('latin1').decode(bytes.filter((b) => b !== 0x1b));
}

/**
 * dcmjs's parse of a little endian file whose last element is a top-level native Pixel Data, with
 * that value a view of `buffer` rather than dcmjs's copy (the copy doubled a large file in memory);
 * undefined for anything else, which then gets dcmjs's full parse. The bytes handed through are
 * exactly the element dicom-parser found at the top level ending at the end of the file, and every
 * byte before it goes through dcmjs (and so the anonymiser) as before, so nothing escapes
 * de-identification; when the two parsers disagree in any way the full parse is used.
 */
function readWithPixelView(buffer: Buffer): DicomDict | undefined {
  let element;
  let syntax: string | undefined;
  try {
    const set = parseDicom(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), {
      untilTag: 'x7fe00010',
    });
    element = set.elements.x7fe00010;
    syntax = set.string('x00020010')?.replace(/[\0 ]+$/, '');
  } catch {
    return undefined;
  }
  if (!element || (syntax !== IMPLICIT_LE && syntax !== EXPLICIT_LE)) return undefined;
  if (element.hadUndefinedLength || element.encapsulatedPixelData || element.length < 0x10000) return undefined;
  if (element.dataOffset + element.length !== buffer.length) return undefined;
  const explicit = syntax === EXPLICIT_LE;
  const headerAt = element.dataOffset - (explicit ? 12 : 8);
  if (headerAt < 132 || buffer.readUInt16LE(headerAt) !== 0x7fe0 || buffer.readUInt16LE(headerAt + 2) !== 0x0010)
    return undefined;
  if (explicit) {
    const vr = buffer.toString('latin1', headerAt + 4, headerAt + 6);
    if ((vr !== 'OB' && vr !== 'OW') || buffer.readUInt16LE(headerAt + 6) !== 0) return undefined;
  }
  if (buffer.readUInt32LE(element.dataOffset - 4) !== element.length) return undefined;
  // The bytes before the element plus its header with a zero length: dcmjs makes the element as it
  // would for the whole file, and only its value is then pointed at the input.
  const head = new Uint8Array(element.dataOffset);
  head.set(buffer.subarray(0, element.dataOffset));
  new DataView(head.buffer).setUint32(element.dataOffset - 4, 0, true);
  let parsed: DicomDict;
  try {
    parsed = DicomMessage.readFile(head.buffer);
  } catch {
    return undefined;
  }
  const pixels = parsed.dict[PIXEL_DATA];
  const value = pixels?.Value;
  if (
    !pixels ||
    (pixels.vr !== 'OB' && pixels.vr !== 'OW') ||
    pixels._rawValue !== undefined ||
    value?.length !== 1 ||
    !(value[0] instanceof ArrayBuffer) ||
    value[0].byteLength !== 0 ||
    Object.keys(parsed.dict).some((tag) => tag > PIXEL_DATA)
  )
    return undefined;
  pixels.Value = [buffer.subarray(element.dataOffset)];
  return parsed;
}

export interface DecodedFile {
  parsed: DicomDict;
  /** The character sets that were decoded here rather than by dcmjs (none when dcmjs's path sufficed). */
  converted: string[];
  warnings: string[];
}

/**
 * Parses a Part 10 buffer with every string decoded to Unicode. Throws dcmjs's or dicom-parser's
 * error for a file neither can read. A large native Pixel Data that ends the file is a view of
 * `buffer` (see readWithPixelView), unless `wholeFile` asks for dcmjs's own full parse.
 */
export function readDicom(buffer: Buffer, options: { wholeFile?: boolean } = {}): DecodedFile {
  let parsed = options.wholeFile ? undefined : readWithPixelView(buffer);
  try {
    parsed ??= DicomMessage.readFile(toArrayBuffer(buffer));
  } catch (error) {
    if (!/character set/i.test((error as Error).message)) throw error;
  }
  if (parsed && !needsOwnDecoding(parsed.dict)) return { parsed, converted: [], warnings: [] };
  if (firstText(parsed?.meta['00020010']).trim() === '1.2.840.10008.1.2.1.99') {
    throw new Error('a deflated file with ISO 2022 or per-item character sets is not supported');
  }
  const located = locateCharsets(buffer);
  const blanked = Buffer.from(buffer);
  for (const { offset, length } of located) blanked.fill(0x20, offset, offset + length);
  parsed = DicomMessage.readFile(toArrayBuffer(blanked));
  const warnings: string[] = [];
  const sets = [...datasets(parsed.dict, true)].filter((d) => d[CHARSET] !== undefined);
  if (sets.length !== located.length)
    throw new Error(`found ${located.length} Specific Character Set elements but parsed ${sets.length}`);
  const own = new Map(sets.map((d, i) => [d, located[i].value]));
  const converted = new Set<string>();
  const decodeAll = (dataset: DicomDataset, inherited: string) => {
    let charset = own.get(dataset) ?? inherited;
    try {
      convertBytes(charset, new Uint8Array(0));
    } catch {
      warnings.push(
        `unknown Specific Character Set "${charset.replace(/[^ -~]/g, '?').slice(0, 64)}": read as ISO_IR 100`,
      );
      charset = 'ISO_IR 100';
    }
    converted.add(charset);
    for (const tag of Object.keys(dataset)) {
      const element = dataset[tag];
      if (element.vr === 'SQ') {
        for (const item of (element.Value ?? []) as DicomDataset[]) decodeAll(item, charset);
        continue;
      }
      if (!ENCODED_VRS.has(element.vr)) continue;
      const decode = (text: unknown) =>
        typeof text === 'string' ? lenientDecode(charset, bytesOf(text), element.vr, tag, warnings) : text;
      element.Value = (element.Value ?? []).map((value) => {
        if (element.vr !== 'PN' || value === null || typeof value !== 'object') return decode(value);
        return Object.fromEntries(
          Object.entries(value as Record<string, unknown>).map(([group, text]) => [group, decode(text)]),
        );
      });
      delete element._rawValue;
    }
    if (dataset[CHARSET]) dataset[CHARSET] = { vr: 'CS', Value: ['ISO_IR 192'] };
  };
  decodeAll(parsed.dict, '');
  return { parsed, converted: [...converted].filter((c) => c !== ''), warnings };
}
