/**
 * The `Anonymise` block of a rule: which PS3.15 Annex E options apply and how identity is replaced.
 * Shared by the rule validator (shared/rules) and the engine (shared/dicom), so a rule that loads
 * is a rule the engine can run.
 */
import { z } from 'zod';

/** A DICOM keyword (`StudyDescription`) or a `(gggg,eeee)` tag. */
export const tagReferenceSchema = z
  .string()
  .trim()
  .regex(
    /^([A-Za-z][A-Za-z0-9]*|\(?[0-9A-Fa-f]{4},?[0-9A-Fa-f]{4}\)?)$/,
    'expected a DICOM keyword such as StudyDescription or a tag such as (0008,103E)',
  );

export const anonymiseSettingsSchema = z
  .object({
    /**
     * The project whose key derives this rule's pseudonyms and UIDs (default: the rule's id). Rules
     * naming the same project give a patient the same pseudonym; different projects cannot be linked.
     */
    Project: z.string().trim().min(1, 'must not be empty').max(128, 'use at most 128 characters').optional(),
    /** How PatientID/PatientName are replaced: a keyed-hash pseudonym, or a row of the operator's CSV mapping file. */
    Identity: z.enum(['pseudonym', 'mapping']).default('pseudonym'),
    /** CSV `original_id,pseudonym` (header optional), relative to the rules folder; required for `mapping`. */
    MappingFile: z.string().trim().min(1).optional(),
    /** Prefix of generated pseudonyms (PatientID and PatientName). */
    PseudonymPrefix: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_-]{0,16}$/, 'use up to 16 letters, digits, _ or -')
      .default('ANON'),
    /** Retain Longitudinal Temporal Information: none (basic profile), full dates, or dates shifted per patient. */
    RetainLongitudinal: z.enum(['none', 'full', 'shifted']).default('none'),
    RetainPatientCharacteristics: z.boolean().default(false),
    RetainDeviceIdentity: z.boolean().default(false),
    RetainInstitutionIdentity: z.boolean().default(false),
    CleanDescriptors: z.boolean().default(false),
    RetainSafePrivate: z.boolean().default(false),
    /** Private attributes kept under RetainSafePrivate, as `(gggg,xxee)` with the private creator: `{"Creator": "SIEMENS CSA HEADER", "Tag": "(0029,xx08)"}`. */
    SafePrivateAllowList: z
      .array(
        z.object({
          Creator: z.string().min(1),
          Tag: z.string().regex(/^\(?[0-9A-Fa-f]{4},?(xx|XX|[0-9A-Fa-f]{2})[0-9A-Fa-f]{2}\)?$/, 'expected (gggg,xxee)'),
        }),
      )
      .default([]),
    Keep: z.array(tagReferenceSchema).default([]),
    Remove: z.array(tagReferenceSchema).default([]),
    Replace: z.record(tagReferenceSchema, z.string()).default({}),
    /** Instances flagged BurnedInAnnotation=YES, or of modalities known to burn in text (US, SC, ...). */
    BurnedInAnnotation: z.enum(['exclude', 'fail', 'warn']).default('fail'),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (value.Identity === 'mapping' && value.MappingFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['MappingFile'],
        message: 'Identity "mapping" needs a MappingFile (CSV: original id, pseudonym)',
      });
    }
  });

export type AnonymiseSettings = z.infer<typeof anonymiseSettingsSchema>;

/** The project a rule's keyed derivations belong to: its `Project`, else the rule's own id. */
export function anonymisationProject(settings: Pick<AnonymiseSettings, 'Project'>, ruleId: string): string {
  return settings.Project ?? ruleId;
}
