// Minimal types for the parts of dcmjs (which ships none) that this project uses.
declare module 'dcmjs' {
  export interface DicomElement {
    vr: string;
    Value?: unknown[];
    _rawValue?: unknown;
    InlineBinary?: string;
  }
  export type DicomDataset = Record<string, DicomElement>;
  export class DicomDict {
    constructor(meta: DicomDataset);
    meta: DicomDataset;
    dict: DicomDataset;
    write(options?: { allowInvalidVRLength?: boolean; fragmentMultiframe?: boolean }): ArrayBuffer;
  }
  export const data: {
    DicomDict: typeof DicomDict;
    DicomMessage: {
      readFile(
        buffer: ArrayBuffer,
        options?: {
          ignoreErrors?: boolean;
          untilTag?: string;
          includeUntilTagValue?: boolean;
          noCopy?: boolean;
          forceStoreRaw?: boolean;
        },
      ): DicomDict;
    };
    DicomMetaDictionary: {
      naturalizeDataset(dataset: DicomDataset): Record<string, unknown>;
      denaturalizeDataset(dataset: Record<string, unknown>): DicomDataset;
      uid(): string;
      unpunctuateTag(tag: string): string;
      punctuateTag(tag: string): string;
      dictionary: Record<string, { tag: string; vr: string; name: string; vm: string; version: string }>;
      nameMap: Record<string, { tag: string; vr: string; name: string; vm: string; version: string }>;
    };
  };
  const dcmjs: { data: typeof data };
  export default dcmjs;
}
