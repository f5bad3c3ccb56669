#!/usr/bin/python3
"""Dumps DICOM files with pydicom (Debian's python3-pydicom) for tests that check de-identified output.

Reads a JSON list of paths on stdin and writes one JSON object per file on stdout (JSON lines):
every element of the file meta and the dataset, recursively into sequences, with its tag, VR,
keyword, path and values as text; the raw bytes of text elements; and digests of the pixel data
(native: the bytes, normalised to little endian; encapsulated: every frame and every fragment).
With --strict a file must be a valid Part 10 file (the check applied to anonymised output);
without it the reader is lenient (pydicom's corpus holds files without a meta header).

Run with /usr/bin/python3: the python3 first on PATH may be one without pydicom.
"""
import hashlib
import json
import sys
import traceback
import warnings

import pydicom
from pydicom import encaps
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

TEXT_VRS = {'AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT'}
BINARY_VRS = {'OB', 'OW', 'OF', 'OD', 'OL', 'OV', 'UN', 'OB or OW', 'US or OW', 'US or SS or OW'}
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
RAW_LIMIT = 8192


def digest(data):
    return hashlib.sha256(data).hexdigest()


def tag_hex(tag):
    return f'{tag.group:04X}{tag.element:04X}'


def printable_text(data):
    """Binary values (UN/OB private data) that are really text are searched like text."""
    text = data.decode('latin-1').strip('\0 ')
    if len(text) < 4:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in '\r\n\t')
    return text if printable >= 0.95 * len(text) else None


def texts(elem):
    value = elem.value
    if value is None:
        return []
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    out = []
    for v in items:
        if isinstance(v, PersonName):
            out.append({'text': str(v), 'components': [c for c in v.components if c]})
        elif isinstance(v, (bytes, bytearray)):
            if elem.tag in PIXEL_TAGS or len(v) > RAW_LIMIT:
                continue
            t = printable_text(bytes(v))
            if t is not None:
                out.append({'text': t, 'binary': True})
        else:
            out.append({'text': str(v)})
    return out


def walk(ds, prefix, out, errors):
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        raw_bytes = raw.value if isinstance(raw, RawDataElement) and isinstance(raw.value, (bytes, bytearray)) else None
        try:
            elem = ds[tag]
        except Exception as error:  # a value pydicom cannot convert is reported, not fatal to the dump
            errors.append(f'{prefix}{tag_hex(tag)}: {type(error).__name__}: {error}')
            continue
        path = f'{prefix}{tag_hex(elem.tag)}'
        entry = {'path': path, 'tag': tag_hex(elem.tag), 'vr': elem.VR, 'keyword': elem.keyword or '', 'private': elem.tag.is_private}
        if elem.tag.is_private:
            try:
                entry['creator'] = elem.private_creator
            except Exception:
                pass
        if elem.VR == 'SQ':
            entry['items'] = len(elem.value)
            out.append(entry)
            for i, item in enumerate(elem.value):
                walk(item, f'{path}[{i}]/', out, errors)
            continue
        if elem.tag in PIXEL_TAGS:
            out.append(entry)
            continue
        entry['values'] = texts(elem)
        if raw_bytes is not None and elem.VR in TEXT_VRS and len(raw_bytes) <= RAW_LIMIT:
            entry['raw'] = bytes(raw_bytes).hex()
        out.append(entry)


def pixel_info(ds):
    """Digests of the pixel data, and where it lies in the file (so byte searches can skip it)."""
    info = []
    ts = getattr(getattr(ds, 'file_meta', None), 'TransferSyntaxUID', None)
    for tag in sorted(PIXEL_TAGS):
        if tag not in ds:
            continue
        raw = ds.get_item(tag)
        data = raw.value if isinstance(raw, RawDataElement) else ds[tag].value
        entry = {'tag': f'{tag:08X}', 'length': len(data)}
        if isinstance(raw, RawDataElement) and raw.value_tell is not None:
            entry['offset'] = raw.value_tell
        encapsulated = tag == 0x7FE00010 and ts is not None and ts.is_compressed and data[:4] == b'\xfe\xff\x00\xe0'
        if encapsulated:
            frames = int(ds.get('NumberOfFrames', 1) or 1)
            entry['kind'] = 'encapsulated'
            try:
                entry['frames'] = [digest(f) for f in encaps.generate_pixel_data_frame(data, frames)]
            except Exception as error:
                entry['frames_error'] = f'{type(error).__name__}: {error}'
            fp = pydicom.filebase.DicomBytesIO(data)
            fp.is_little_endian = True
            try:
                entry['fragments'] = [digest(f) for f in encaps.generate_pixel_data_fragment(fp)]
            except Exception as error:
                entry['fragments_error'] = f'{type(error).__name__}: {error}'
        else:
            entry['kind'] = 'native'
            entry['sha256'] = digest(data)
            little = ds.is_little_endian if ds.is_little_endian is not None else True
            size = {16: 2, 32: 4, 64: 8}.get(int(ds.get('BitsAllocated', 8) or 8), 1)
            if tag == 0x7FE00008:
                size = 4
            if tag == 0x7FE00009:
                size = 8
            swapped = data
            if not little and size > 1 and raw.VR != 'OB':
                swapped = b''.join(data[i:i + size][::-1] for i in range(0, len(data) - len(data) % size, size))
            entry['le_sha256'] = digest(swapped)
        info.append(entry)
    return info


def dump(path, strict):
    result = {'file': path}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            ds = pydicom.dcmread(path, force=not strict)
            if strict and not getattr(ds, 'file_meta', None):
                raise ValueError('no file meta information')
            elements, errors = [], []
            if getattr(ds, 'file_meta', None) is not None:
                walk(ds.file_meta, 'meta/', elements, errors)
            walk(ds, '', elements, errors)
            result['transferSyntax'] = str(getattr(ds.file_meta, 'TransferSyntaxUID', '')) if getattr(ds, 'file_meta', None) else ''
            result['elements'] = elements
            result['errors'] = errors
            result['pixels'] = pixel_info(ds)
            result['ok'] = not errors
        except Exception as error:
            result['ok'] = False
            result['error'] = f'{type(error).__name__}: {error}'
            result['trace'] = traceback.format_exc(limit=3)
    result['warnings'] = sorted({str(w.message) for w in caught})
    return result


def main():
    strict = '--strict' in sys.argv[1:]
    for path in json.load(sys.stdin):
        sys.stdout.write(json.dumps(dump(path, strict)) + '\n')


if __name__ == '__main__':
    main()
