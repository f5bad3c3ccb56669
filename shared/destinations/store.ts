/**
 * The port of the destinations operators add in the dashboard (issue 22): durable records of DICOM
 * destinations beside those of the environment, and the audit trail of every change to them. The
 * Table adapter is shared/storage/tableDestinations.ts; the unit tests use test/support/memory-destinations.ts.
 */

/** What an operator sets of a DICOM destination; the name is its id and never changes (rules refer to it). */
export interface DicomDestinationFields {
  /** Absent (a DICOM destination), as on every record saved before DICOMweb ones could be added. */
  kind?: 'dicom';
  aet: string;
  host: string;
  port: number;
}

/**
 * A DICOMweb (STOW-RS) destination: its base URL, and where its credentials are, if it needs any. The
 * record names an environment prefix (`credentialsFrom`), read at each send as `<prefix>_TOKEN` or
 * `<prefix>_USERNAME`/`_PASSWORD`: a secret is never stored here, returned by the API or audited.
 */
export interface DicomWebDestinationFields {
  kind: 'dicomweb';
  url: string;
  credentialsFrom?: string;
}

export type DestinationFields = DicomDestinationFields | DicomWebDestinationFields;

interface StoredMeta {
  name: string;
  createdAt: string;
  updatedAt: string;
  /** Who made the last change (the user nginx authenticated, or `function-key`). */
  updatedBy: string;
  /** Opaque, set by the store on every read (an ETag): a write made from a stale read is refused. */
  version?: string;
}

export type StoredDicomDestination = DicomDestinationFields & StoredMeta;
export type StoredDicomWebDestination = DicomWebDestinationFields & StoredMeta;
export type StoredDestination = StoredDicomDestination | StoredDicomWebDestination;

export const isDicomWeb = (d: DestinationFields): d is DicomWebDestinationFields => d.kind === 'dicomweb';

export type DestinationAction = 'add' | 'edit' | 'delete';

/** One change, as the audit keeps it: destinations hold no secret (only where one is), so before and after are whole. */
export interface DestinationChange {
  at: string;
  who: string;
  action: DestinationAction;
  name: string;
  before?: DestinationFields;
  after?: DestinationFields;
}

/** A write lost to a concurrent one: the caller reads again and decides. */
export class DestinationConflict extends Error {
  constructor(readonly reason: 'exists' | 'changed' | 'missing') {
    super(`destination record ${reason}`);
    this.name = 'DestinationConflict';
  }
}

export interface DestinationStore {
  list(): Promise<StoredDestination[]>;
  /** By name, compared without regard to case: two names differing only in case would be one in a rule reader's eyes. */
  get(name: string): Promise<StoredDestination | undefined>;
  /** Throws DestinationConflict('exists') when the name (in any case) is taken. */
  create(destination: StoredDestination): Promise<void>;
  /** Replaces the record only if it is still `expected` (read before); else DestinationConflict('changed'). */
  replace(expected: StoredDestination, next: StoredDestination): Promise<void>;
  /** Deletes the record only if it is still `expected`; DestinationConflict('changed') or ('missing') otherwise. */
  remove(expected: StoredDestination): Promise<void>;
  record(change: DestinationChange): Promise<void>;
  /** The newest changes first. */
  audit(limit: number): Promise<DestinationChange[]>;
}
