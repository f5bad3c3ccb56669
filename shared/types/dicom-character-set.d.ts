// Types for dicom-character-set (it ships none): the one function this project uses.
declare module 'dicom-character-set' {
  /** Decodes the bytes of one DICOM text value with a Specific Character Set (0008,0005) value. */
  export function convertBytes(
    specificCharacterSet: string | undefined,
    bytes: Uint8Array,
    options?: { vr?: string },
  ): string;
}
