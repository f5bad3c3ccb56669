/**
 * Writes shared/dicom/data/safe-attributes.json: the public attributes outside PS3.15 Table E.1-1
 * that the anonymiser keeps (everything else outside the table falls back by VR, see
 * shared/dicom/decisions.ts). Run it again after refreshing the table or upgrading dcmjs:
 *   node --import tsx scripts/generate-safe-attributes.ts
 * and review the diff. Names and VRs come from dcmjs's PS3.6 dictionary; table rows always win,
 * so nothing listed in Table E.1-1 is ever written here.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import dcmjs from 'dcmjs';
import table from '../shared/dicom/data/confidentiality_profile_attributes.json';

/**
 * Values of these VRs are numbers, coded strings or tag pointers (PS3.5 6.2): measurements,
 * counts, geometry, acquisition parameters, enumerated and defined terms. They cannot hold a name
 * or free text; Table E.1-1 lists the few that still identify (age, size, weight, sex, ...).
 */
const VR_CLASSES: Record<string, { class: string; vrs: string[] }> = {
  numeric: { class: 'numeric', vrs: ['DS', 'IS', 'FL', 'FD', 'SL', 'SS', 'UL', 'US', 'SV', 'UV', 'xs', 'up'] },
  coded: { class: 'coded-string', vrs: ['CS'] },
  pointer: { class: 'attribute-pointer', vrs: ['AT'] },
};

/** Binary VRs: only image, LUT, waveform, surface, curve and spectroscopy data are kept. */
const BINARY_VRS = ['OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'ox', 'lt'];
/** Binary attributes that can carry a document, a signature, opaque identifiers or private data. */
const BINARY_EXCLUDED = new Set([
  '00020102', // PrivateInformation (file meta)
  '0008041B',
  '0008041C', // RecordKey, PriorRecordKey (inventory keys)
  '0040A074',
  '0040A089', // retired trial binary identifiers
  '00686300', // HPGLDocument
  '00720067',
  '00720069',
  '00720073',
  '00720075',
  '00720081', // hanging-protocol selector values (any attribute's value)
  '04000120',
  '04000520', // Signature, EncryptedContent
  '40101006',
  '4010106C', // DICOS threat bitmap, detector calibration
  '5000200C',
  '50003000',
  '60003000', // curve/audio/overlay data: Table E.1-1 and the overlay rule decide
]);

/**
 * Text and UID attributes known to carry no identity, chosen by hand from the PS3.3 modules they
 * belong to (module named per entry). Free-text descriptions, labels typed by people, comments and
 * instance-level UIDs are deliberately absent.
 */
const CURATED: Array<[string, string]> = [
  // Code Sequence Macro (PS3.3 Table 8.8-1) and Coding Scheme Identification (SOP Common, C.12.1)
  ['00080100', 'Code Sequence Macro'],
  ['00080102', 'Code Sequence Macro'],
  ['00080103', 'Code Sequence Macro'],
  ['00080104', 'Code Sequence Macro'],
  ['00080119', 'Code Sequence Macro'],
  ['00080120', 'Code Sequence Macro'],
  ['00080117', 'Code Sequence Macro'],
  ['00080118', 'Code Sequence Macro'],
  ['00080122', 'Code Sequence Macro'],
  ['0008010C', 'SOP Common: Coding Scheme Identification'],
  ['00080112', 'SOP Common: Coding Scheme Identification'],
  ['00080114', 'SOP Common: Coding Scheme Identification'],
  ['00080115', 'SOP Common: Coding Scheme Identification'],
  ['00080116', 'SOP Common: Coding Scheme Identification'],
  ['0008010E', 'SOP Common: Coding Scheme Identification'],
  // SOP Class and Transfer Syntax UIDs (PS3.6 Annex A registered, or a vendor's private class)
  ['00080016', 'SOP Common: SOP Class UID'],
  ['0008001A', 'SOP Common'],
  ['0008001B', 'SOP Common'],
  ['00080062', 'Study: SOP Classes in Study'],
  ['00081150', 'SOP Instance Reference Macro: Referenced SOP Class UID'],
  ['0008115A', 'SOP Classes Supported'],
  ['00000002', 'Command: Affected SOP Class UID'],
  ['00000003', 'Command: Requested SOP Class UID'],
  ['00020002', 'File Meta: Media Storage SOP Class UID'],
  ['00020010', 'File Meta: Transfer Syntax UID'],
  ['00041510', 'Directory Record: Referenced SOP Class UID in File'],
  ['00041512', 'Directory Record: Referenced Transfer Syntax UID in File'],
  ['0004151A', 'Directory Record'],
  ['0008040E', 'Transfer Syntax UID'],
  ['00083002', 'Transfer Syntax UID'],
  ['00340003', 'Transfer Syntax UID'],
  ['04000010', 'Transfer Syntax UID'],
  ['04000510', 'Transfer Syntax UID'],
  ['30100052', 'SOP Class UIDs'],
  ['30100053', 'SOP Class UIDs'],
  // General Equipment (C.7.5.1): make, model and software, which Table E.1-1 does not list
  ['00080070', 'General Equipment: Manufacturer'],
  ['00081090', 'General Equipment: Manufacturer Model Name'],
  ['00181020', 'General Equipment: Software Versions'],
  // Image Pixel, Modality/VOI LUT, Presentation (C.7.6.3, C.11.1, C.11.2)
  ['00281054', 'Modality LUT: Rescale Type'],
  ['00281055', 'VOI LUT: Window Center & Width Explanation'],
  ['00283003', 'LUT Explanation'],
  ['00283004', 'Modality LUT Type'],
  ['00280A04', 'Pixel Spacing Calibration Description'],
  // Frame of Reference (C.7.4.1), Multi-frame Dimension (C.7.6.17), Functional Groups (C.7.6.16)
  ['00201040', 'Frame of Reference: Position Reference Indicator'],
  ['00209421', 'Multi-frame Dimension: Dimension Description Label'],
  ['00209213', 'Multi-frame Dimension: private creator of the index'],
  ['00209238', 'Functional Groups: private creator'],
  ['00209056', 'Stack ID'],
  // MR Image / Enhanced MR (C.8.3.1, C.8.13)
  ['00180024', 'MR Image: Sequence Name'],
  ['00180085', 'MR Image: Imaged Nucleus'],
  ['00181250', 'MR Image: Receive Coil Name'],
  ['00181251', 'MR Image: Transmit Coil Name'],
  ['00189005', 'Enhanced MR: Pulse Sequence Name'],
  ['00189041', 'Enhanced MR: Receive Coil Manufacturer Name'],
  ['00189050', 'Enhanced MR: Transmit Coil Manufacturer Name'],
  ['00189047', 'Enhanced MR: Multi-Coil Element Name'],
  ['00189046', 'Enhanced MR: Multi-Coil Configuration'],
  // CT Image / Enhanced CT (C.8.2.1, C.8.15)
  ['00181210', 'CT Image: Convolution Kernel'],
  ['00181160', 'CT/DX: Filter Type'],
  ['00189320', 'Enhanced CT: Image Filter'],
  // PET / NM (C.8.4, C.8.9)
  ['00180031', 'PET Isotope: Radiopharmaceutical'],
  ['00181070', 'Radiopharmaceutical Route'],
  ['00541101', 'PET Image: Attenuation Correction Method'],
  ['00541103', 'PET Image: Reconstruction Method'],
  ['00541105', 'PET Image: Scatter Correction Method'],
  ['00541104', 'PET: Detector Lines of Response Used'],
  ['00540018', 'NM/PET Energy Window Name'],
  // X-ray acquisition (C.8.7, C.8.19)
  ['00181180', 'Collimator/Grid Name'],
  ['00181061', 'Trigger Source or Type'],
  ['00181064', 'Cardiac Framing Type'],
  ['001811B0', 'Acquisition Mode'],
  ['001811B1', 'Dose Mode Name'],
  ['00181022', 'SC Equipment: Video Image Format Acquired'],
  ['00181023', 'SC Equipment: Digital Image Format Acquired'],
  ['00181040', 'Contrast/Bolus: Route'],
  ['00082127', 'View Name'],
  ['00082120', 'Stage Name'],
  // Segmentation (C.8.20): algorithm identity, not the annotator's words
  ['00620009', 'Segmentation: Segment Algorithm Name'],
  // Encapsulated Document (C.24.2): the MIME type only (the document itself is in Table E.1-1)
  ['00420012', 'Encapsulated Document: MIME Type'],
  ['00420014', 'Encapsulated Document: List of MIME Types'],
];

const dictionary = Object.values(dcmjs.data.DicomMetaDictionary.nameMap);
const inTable = new Set((table as Array<{ id: string }>).map((r) => r.id.toUpperCase()));
const hex = (tag: string) => tag.replace(/[(),]/g, '').toUpperCase();
const byTag = new Map(dictionary.map((e) => [hex(e.tag), e]));

const entries: Array<{ tag: string; keyword: string; vr: string; class: string; source?: string }> = [];
for (const entry of dictionary) {
  const tag = hex(entry.tag);
  // Group lengths are removed (they go stale when anything changes); items and delimiters are structure.
  if (!/^[0-9A-F]{8}$/.test(tag) || inTable.has(tag) || tag.startsWith('FFFE') || tag.endsWith('0000')) continue;
  for (const { class: cls, vrs } of Object.values(VR_CLASSES)) {
    if (vrs.includes(entry.vr)) entries.push({ tag, keyword: entry.name, vr: entry.vr, class: cls });
  }
  if (
    BINARY_VRS.includes(entry.vr) &&
    !BINARY_EXCLUDED.has(tag) &&
    !tag.startsWith('0002') &&
    !tag.startsWith('0004')
  ) {
    entries.push({ tag, keyword: entry.name, vr: entry.vr, class: 'binary-data' });
  }
}
for (const [tag, source] of CURATED) {
  const entry = byTag.get(tag);
  if (!entry) throw new Error(`${tag} is not in dcmjs's dictionary`);
  if (inTable.has(tag)) throw new Error(`${tag} ${entry.name} is in Table E.1-1: the table decides it`);
  entries.push({ tag, keyword: entry.name, vr: entry.vr, class: 'curated', source: `PS3.3 ${source}` });
}
entries.sort((a, b) => a.tag.localeCompare(b.tag));

const out = {
  description:
    'Public attributes outside PS3.15 Table E.1-1 that carry no identity and are kept by the anonymiser. Generated by scripts/generate-safe-attributes.ts; see README.md beside this file.',
  dictionary: 'dcmjs 0.52.2 DicomMetaDictionary (PS3.6 data dictionary)',
  version: 1,
  classes: {
    numeric:
      'VR DS, IS, FL, FD, SL, SS, UL, US, SV, UV (PS3.5 6.2): numbers (measurements, counts, geometry, acquisition parameters)',
    'coded-string': 'VR CS (PS3.5 6.2): enumerated values and defined terms',
    'attribute-pointer': 'VR AT: a tag pointer',
    'binary-data':
      'VR OB, OW, OF, OD, OL, OV: image, LUT, waveform, surface, curve or spectroscopy data (documents, signatures, keys excluded)',
    curated: 'text or UID attributes chosen by hand from the PS3.3 module named in the entry',
  },
  /** [tag, keyword, VR, class, PS3.3 source of a curated entry] */
  attributes: entries.map((e) =>
    e.source ? [e.tag, e.keyword, e.vr, e.class, e.source] : [e.tag, e.keyword, e.vr, e.class],
  ),
};
const target = path.join(__dirname, '..', 'shared', 'dicom', 'data', 'safe-attributes.json');
const { attributes, ...head } = out;
const lines = attributes.map((a) => `    ${JSON.stringify(a)}`).join(',\n');
writeFileSync(target, `${JSON.stringify(head, null, 2).replace(/\n}$/, ',')}\n  "attributes": [\n${lines}\n  ]\n}\n`);
console.log(`${entries.length} attributes written to ${path.relative(process.cwd(), target)}`);
