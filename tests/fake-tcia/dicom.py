# SPDX-License-Identifier: MIT
# A minimal DICOM Part 10 writer (explicit VR little endian), standard library only.
# It writes just what a viewer needs to open an image and what tciafs tests check:
# patient, study, series and SOP identifiers that match the fake archive's metadata.

import random
import struct

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1337.1"
IMPLEMENTATION_VERSION = "FAKETCIA_1"

SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
}
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

# VRs whose length field is 4 bytes after two reserved bytes (PS3.5 7.1.2).
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UR", "UT", "UN"}
# Maximum value lengths we enforce so that readers never see an invalid value.
_MAX_LEN = {"LO": 64, "SH": 16, "CS": 16, "PN": 64, "DA": 8, "IS": 12, "UI": 64}


def _element(group, elem, vr, value):
    if isinstance(value, str):
        raw = value.encode("utf-8")
        limit = _MAX_LEN.get(vr)
        if limit is not None and len(raw) > limit:
            # Cut on a UTF-8 boundary: a stray continuation byte would make the value invalid.
            raw = raw[:limit]
            while raw and (raw[-1] & 0xC0) == 0x80:
                raw = raw[:-1]
            if raw and raw[-1] >= 0xC0:
                raw = raw[:-1]
        pad = b"\0" if vr == "UI" else b" "
        if len(raw) % 2:
            raw += pad
    else:
        raw = bytes(value)
        if len(raw) % 2:
            raw += b"\0"
    tag = struct.pack("<HH", group, elem) + vr.encode("ascii")
    if vr in _LONG_VRS:
        return tag + b"\0\0" + struct.pack("<I", len(raw)) + raw
    return tag + struct.pack("<H", len(raw)) + raw


def _us(v):
    return struct.pack("<H", v)


def dicom_header(image):
    """Everything of the file up to the pixel data's value (the value itself excluded).

    image: dict with PatientID, PatientName, StudyInstanceUID, SeriesInstanceUID,
    SOPInstanceUID, Modality, StudyDate (YYYYMMDD), StudyDescription, SeriesDescription,
    Manufacturer, BodyPartExamined (may be None), SeriesNumber, InstanceNumber, Rows, Columns.
    """
    sop_class = SOP_CLASS.get(image["Modality"], SECONDARY_CAPTURE)
    meta = b"".join([
        _element(0x0002, 0x0001, "OB", b"\0\1"),
        _element(0x0002, 0x0002, "UI", sop_class),
        _element(0x0002, 0x0003, "UI", image["SOPInstanceUID"]),
        _element(0x0002, 0x0010, "UI", EXPLICIT_VR_LE),
        _element(0x0002, 0x0012, "UI", IMPLEMENTATION_UID),
        _element(0x0002, 0x0013, "SH", IMPLEMENTATION_VERSION),
    ])
    meta = _element(0x0002, 0x0000, "UL", struct.pack("<I", len(meta))) + meta
    rows, cols = image["Rows"], image["Columns"]
    ds = [
        _element(0x0008, 0x0005, "CS", "ISO_IR 192"),
        _element(0x0008, 0x0016, "UI", sop_class),
        _element(0x0008, 0x0018, "UI", image["SOPInstanceUID"]),
        _element(0x0008, 0x0020, "DA", image["StudyDate"]),
        _element(0x0008, 0x0060, "CS", image["Modality"]),
        _element(0x0008, 0x0070, "LO", image["Manufacturer"]),
        _element(0x0008, 0x1030, "LO", image["StudyDescription"]),
        _element(0x0008, 0x103E, "LO", image["SeriesDescription"]),
        _element(0x0010, 0x0010, "PN", image["PatientName"]),
        _element(0x0010, 0x0020, "LO", image["PatientID"]),
    ]
    if image.get("BodyPartExamined"):
        ds.append(_element(0x0018, 0x0015, "CS", image["BodyPartExamined"]))
    ds += [
        _element(0x0020, 0x000D, "UI", image["StudyInstanceUID"]),
        _element(0x0020, 0x000E, "UI", image["SeriesInstanceUID"]),
        _element(0x0020, 0x0011, "IS", str(image["SeriesNumber"])),
        _element(0x0020, 0x0013, "IS", str(image["InstanceNumber"])),
        _element(0x0028, 0x0002, "US", _us(1)),
        _element(0x0028, 0x0004, "CS", "MONOCHROME2"),
        _element(0x0028, 0x0010, "US", _us(rows)),
        _element(0x0028, 0x0011, "US", _us(cols)),
        _element(0x0028, 0x0100, "US", _us(16)),
        _element(0x0028, 0x0101, "US", _us(16)),
        _element(0x0028, 0x0102, "US", _us(15)),
        _element(0x0028, 0x0103, "US", _us(0)),
    ]
    pixel_len = rows * cols * 2
    pixel_tag = struct.pack("<HH", 0x7FE0, 0x0010) + b"OW\0\0" + struct.pack("<I", pixel_len)
    return b"\0" * 128 + b"DICM" + meta + b"".join(ds) + pixel_tag


def pixel_data(image):
    """Deterministic 16-bit pixels: a gradient shifted by the instance number, or, for
    images marked Noise, seeded noise that compresses as poorly as real CT does."""
    rows, cols = image["Rows"], image["Columns"]
    if image.get("Noise"):
        return random.Random(image["SOPInstanceUID"]).randbytes(rows * cols * 2)
    shift = image["InstanceNumber"] * 37
    row = bytearray()
    for x in range(cols):
        row += struct.pack("<H", (x * 64 + shift) & 0x0FFF)
    out = bytearray()
    for y in range(rows):
        out += row[(y * 2) % len(row):] + row[:(y * 2) % len(row)]
    return bytes(out)


_HEADER_LEN = {}


def dicom_size(image):
    # A header's length depends only on its values' lengths (ASCII ones; others as they
    # are): remembered by that shape, an archive of 200,000 series sizes in a blink.
    key = tuple((k, len(v) if isinstance(v, str) and v.isascii() else v)
                for k, v in sorted(image.items()))
    n = _HEADER_LEN.get(key)
    if n is None:
        n = _HEADER_LEN[key] = len(dicom_header(image))
    return n + image["Rows"] * image["Columns"] * 2


def dicom_file(image):
    return dicom_header(image) + pixel_data(image)
