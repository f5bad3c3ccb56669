/**
 * The one tag-name parser (shared/dicom/tag-names.ts), behind a rule's TagName and the Anonymise
 * block's Keep, Remove and Replace: keywords in any case, `(gggg,eeee)` with or without brackets and
 * comma, nothing for anything else.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTagName, tagHex } from '../../shared/dicom/tag-names';
import { resolveTag } from '../../shared/rules/tags';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { anonymiseSettingsSchema } from '../../shared/dicom/options';

describe('parseTagName', () => {
  it('reads keywords in any case and tags in every written form', () => {
    const description = { keyword: 'StudyDescription', hex: '00081030' };
    for (const name of ['StudyDescription', ' studydescription ', '(0008,1030)', '0008,1030', '00081030'])
      assert.deepEqual(parseTagName(name), description, name);
    assert.deepEqual(parseTagName('(0009,10ab)'), { keyword: undefined, hex: '000910AB' }, 'a private tag');
    for (const name of ['StudyDescriptoin', '(0008,103)', '', 'Study Description'])
      assert.equal(parseTagName(name), undefined, name);
    assert.equal(tagHex('(0008,103e)'), '0008103E');
  });

  it('is what rules and the anonymiser accept', () => {
    const rule = resolveTag('(0008,1030)');
    assert.ok(typeof rule !== 'string');
    assert.deepEqual([rule.keyword, rule.hex], ['StudyDescription', '00081030']);
    const settings = (Keep: string[]) => anonymiseSettingsSchema.parse({ Keep });
    assert.doesNotThrow(() =>
      createAnonymiser({ secret: 's', settings: settings(['(0008,1030)', 'studydescription', 'PatientAge']) }),
    );
    assert.throws(
      () => createAnonymiser({ secret: 's', settings: settings(['StudyDescriptoin']) }),
      /'StudyDescriptoin' is not a DICOM keyword or \(gggg,eeee\) tag/,
    );
  });
});
