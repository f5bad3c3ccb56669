/**
 * Tag names in rules: DICOM keywords (from dcmjs's dictionary) or `(gggg,eeee)`, plus the sending
 * AE title. Which level a tag lives at follows Orthanc's main DICOM tags: patient and study tags are
 * known for the study, series tags per series, anything else is read from one instance per series.
 */
import { parseTagName } from '../dicom/tag-names';
import type { ResourceLevel } from '../vocabulary';

export const REMOTE_AET = 'RemoteAET';
const REMOTE_AET_ALIASES = new Set(['remoteaet', 'sendingaet', 'callingaet', 'sendingaetitle']);

/** Orthanc 1.10's main DICOM tags (the ones its index answers without reading a file). */
export const ORTHANC_MAIN_TAGS = {
  Study: new Set([
    'PatientName',
    'PatientID',
    'PatientBirthDate',
    'PatientSex',
    'OtherPatientIDs',
    'StudyDate',
    'StudyTime',
    'StudyID',
    'StudyDescription',
    'AccessionNumber',
    'StudyInstanceUID',
    'RequestedProcedureDescription',
    'InstitutionName',
    'RequestingPhysician',
    'ReferringPhysicianName',
  ]),
  Series: new Set([
    'SeriesDate',
    'SeriesTime',
    'Modality',
    'Manufacturer',
    'StationName',
    'SeriesDescription',
    'BodyPartExamined',
    'SequenceName',
    'ProtocolName',
    'SeriesNumber',
    'CardiacNumberOfImages',
    'ImagesInAcquisition',
    'NumberOfTemporalPositions',
    'NumberOfSlices',
    'NumberOfTimeSlices',
    'SeriesInstanceUID',
    'ImageOrientationPatient',
    'SeriesType',
    'OperatorsName',
    'PerformedProcedureStepDescription',
    'AcquisitionDeviceProcessingDescription',
    'ContrastBolusAgent',
  ]),
};

export interface ResolvedTag {
  /** What the rule wrote. */
  name: string;
  /** The DICOM keyword when there is one; lookups use it. */
  keyword?: string;
  /** `GGGGEEEE`, upper-case hex, when known. */
  hex?: string;
  remoteAet?: true;
  /** Needs one instance per series to be read (not an Orthanc main tag). */
  fromInstance: boolean;
  inferredLevel: ResourceLevel;
}

/** Resolves a rule's TagName, or returns an error message naming what is accepted. */
export function resolveTag(name: string): ResolvedTag | string {
  const trimmed = name.trim();
  if (REMOTE_AET_ALIASES.has(trimmed.toLowerCase()))
    return { name: trimmed, keyword: REMOTE_AET, remoteAet: true, fromInstance: true, inferredLevel: 'Series' };
  const tag = parseTagName(trimmed);
  if (!tag) return `'${trimmed}' is not a DICOM keyword (e.g. StudyDescription) or a tag like (0008,103E)`;
  return describe(trimmed, tag.keyword, tag.hex);
}

function describe(name: string, keyword: string | undefined, hex: string | undefined): ResolvedTag {
  if (keyword && ORTHANC_MAIN_TAGS.Study.has(keyword))
    return { name, keyword, hex, fromInstance: false, inferredLevel: 'Study' };
  if (keyword && ORTHANC_MAIN_TAGS.Series.has(keyword))
    return { name, keyword, hex, fromInstance: false, inferredLevel: 'Series' };
  return { name, keyword, hex, fromInstance: true, inferredLevel: 'Series' };
}
