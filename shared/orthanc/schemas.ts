/**
 * zod schemas for the Orthanc REST answers we use (checked against Orthanc 1.10.1 and 1.12.7; newer
 * versions add fields, which pass through). Validation catches a proxy page or a wrong URL early, with
 * the endpoint named, instead of a TypeError deep in a step.
 */
import { z } from 'zod';

/**
 * MainDicomTags: keyword → text. Orthanc 1.12 also lists sequences among a series' main tags
 * (RequestAttributesSequence as an array of objects); they are dropped here, as the app reads text values only.
 */
const tagMap = z
  .record(z.string(), z.unknown())
  .transform((tags) =>
    Object.fromEntries(Object.entries(tags).filter((entry): entry is [string, string] => typeof entry[1] === 'string')),
  );

export const systemSchema = z.looseObject({
  Version: z.string(),
  ApiVersion: z.number().optional(),
  Name: z.string().optional(),
  DicomAet: z.string(),
  DicomPort: z.number(),
  HttpPort: z.number().optional(),
  DatabaseBackendPlugin: z.string().nullable().optional(),
  DatabaseVersion: z.number().optional(),
});

export const studySchema = z.looseObject({
  ID: z.string(),
  Type: z.literal('Study'),
  IsStable: z.boolean(),
  LastUpdate: z.string(),
  MainDicomTags: tagMap,
  PatientMainDicomTags: tagMap,
  ParentPatient: z.string(),
  Series: z.array(z.string()),
  AnonymizedFrom: z.string().optional(),
  ModifiedFrom: z.string().optional(),
});

export const seriesSchema = z.looseObject({
  ID: z.string(),
  Type: z.literal('Series'),
  IsStable: z.boolean(),
  LastUpdate: z.string(),
  MainDicomTags: tagMap,
  ParentStudy: z.string(),
  Instances: z.array(z.string()),
  Status: z.string().optional(),
  ExpectedNumberOfInstances: z.number().nullable().optional(),
  AnonymizedFrom: z.string().optional(),
  ModifiedFrom: z.string().optional(),
});

export const instanceSchema = z.looseObject({
  ID: z.string(),
  Type: z.literal('Instance'),
  FileSize: z.number(),
  FileUuid: z.string().optional(),
  IndexInSeries: z.number().nullable().optional(),
  MainDicomTags: tagMap,
  ParentSeries: z.string(),
});

export const changeSchema = z.looseObject({
  ChangeType: z.string(),
  Date: z.string(),
  ID: z.string(),
  Path: z.string(),
  ResourceType: z.string(),
  Seq: z.number(),
});

export const changesSchema = z.looseObject({
  Changes: z.array(changeSchema),
  Done: z.boolean(),
  Last: z.number(),
});

export const lookupSchema = z.array(z.looseObject({ ID: z.string(), Path: z.string(), Type: z.string() }));

export const modalitySchema = z.looseObject({
  AET: z.string(),
  Host: z.string(),
  Port: z.number(),
});

export const modalitiesSchema = z.record(z.string(), modalitySchema);

export const jobSchema = z.looseObject({
  ID: z.string(),
  Type: z.string(),
  State: z.enum(['Pending', 'Running', 'Success', 'Failure', 'Paused', 'Retry']),
  Progress: z.number(),
  ErrorCode: z.number().optional(),
  ErrorDescription: z.string().optional(),
  ErrorDetails: z.string().optional(),
  Content: z.record(z.string(), z.unknown()).optional(),
});

export const jobStartedSchema = z.looseObject({ ID: z.string(), Path: z.string() });

export const storeStraightSchema = z.looseObject({ SOPClassUID: z.string(), SOPInstanceUID: z.string() });

/** `/instances/{id}/simplified-tags`: keyword → string, or nested arrays of objects for sequences. */
export const simplifiedTagsSchema = z.record(z.string(), z.unknown());

export type OrthancSystem = z.infer<typeof systemSchema>;
export type OrthancStudy = z.infer<typeof studySchema>;
export type OrthancSeries = z.infer<typeof seriesSchema>;
export type OrthancInstance = z.infer<typeof instanceSchema>;
export type OrthancChange = z.infer<typeof changeSchema>;
export type OrthancChanges = z.infer<typeof changesSchema>;
export type OrthancModality = z.infer<typeof modalitySchema>;
export type OrthancJob = z.infer<typeof jobSchema>;
