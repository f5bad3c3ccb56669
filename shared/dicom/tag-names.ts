/**
 * The one reading of a tag name written by a person: a rule's TagName and the Anonymise block's Keep,
 * Remove and Replace. It lives with the DICOM code because the rules already depend on it, not the
 * other way round.
 */
import dcmjs from 'dcmjs';

export interface TagName {
  /** The dictionary's keyword, when the tag has one. */
  keyword: string | undefined;
  /** `GGGGEEEE`, upper-case hex; undefined should the dictionary give a keyword's tag with `xx` in it. */
  hex: string | undefined;
}

const byKeyword = dcmjs.data.DicomMetaDictionary.nameMap;
const byTag = dcmjs.data.DicomMetaDictionary.dictionary;
const lowerKeyword = new Map(Object.keys(byKeyword).map((k) => [k.toLowerCase(), k]));

/** `(0008,103e)`, `0008,103E` → `0008103E`: the form datasets and Orthanc's `?short` answers are keyed by here. */
export function tagHex(tag: string): string {
  return tag.replace(/[(),]/g, '').toUpperCase();
}

/**
 * A DICOM keyword from dcmjs's dictionary, in any case, or `(gggg,eeee)` with the brackets and comma
 * optional; undefined when `name` is neither.
 */
export function parseTagName(name: string): TagName | undefined {
  const trimmed = name.trim();
  const hexMatch = /^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$/.exec(trimmed);
  if (hexMatch) {
    const hex = `${hexMatch[1]}${hexMatch[2]}`.toUpperCase();
    return { keyword: byTag[`(${hex.slice(0, 4)},${hex.slice(4)})`]?.name, hex };
  }
  const keyword = byKeyword[trimmed] ? trimmed : lowerKeyword.get(trimmed.toLowerCase());
  if (!keyword) return undefined;
  const hex = tagHex(byKeyword[keyword].tag);
  return { keyword, hex: /^[0-9A-F]{8}$/.test(hex) ? hex : undefined };
}
