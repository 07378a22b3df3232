# SPDX-License-Identifier: MIT
# The fake's DICOM files are real: every file of every series passes dcmtk's dcmdump and
# pydicom, its UIDs match getSeries and getSOPInstanceUIDs, and getSeriesSize agrees
# exactly with the zip's entries.

import os
import zipfile

import pydicom

from harness import TestFailure, run


def test_every_series_is_valid_dicom(ctx):
    s = ctx.server("--series-size-delay", "0")
    checked = 0
    for coll in s.get_json("getCollectionValues"):
        for rec in s.get_json("getSeries", Collection=coll["Collection"]):
            check_series(ctx, s, rec)
            checked += 1
    assert checked >= 20, checked


def check_series(ctx, s, rec):
    uid = rec["SeriesInstanceUID"]
    zpath = ctx.path(uid + ".zip")
    status, _, data = s.get("getImage", SeriesInstanceUID=uid)
    assert status == 200
    with open(zpath, "wb") as f:
        f.write(data)
    out = ctx.path(uid)
    run(["unzip", "-q", zpath, "-d", out])
    files = sorted(f for f in os.listdir(out) if f != "LICENSE")
    assert os.path.exists(os.path.join(out, "LICENSE"))
    size = s.get_json("getSeriesSize", SeriesInstanceUID=uid)[0]
    total = sum(os.path.getsize(os.path.join(out, f)) for f in files)
    if float(size["TotalSizeInBytes"]) != total or size["ObjectCount"] != len(files):
        raise TestFailure("getSeriesSize %r disagrees with the zip (%d files, %d bytes)"
                          % (size, len(files), total))
    assert rec["FileSize"] == total and rec["ImageCount"] == len(files)
    sops = {x["SOPInstanceUID"] for x in s.get_json("getSOPInstanceUIDs",
                                                     SeriesInstanceUID=uid)}
    seen = set()
    for f in files:
        p = os.path.join(out, f)
        r = run(["dcmdump", "-q", p], check=False)
        if r.returncode != 0 or r.stderr.strip():
            raise TestFailure("dcmdump %s: %d %s" % (f, r.returncode, r.stderr))
        ds = pydicom.dcmread(p)
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert ds.SeriesInstanceUID == uid
        assert ds.StudyInstanceUID == rec["StudyInstanceUID"]
        assert ds.PatientID == rec["PatientID"]
        assert ds.Modality == rec["Modality"]
        assert int(ds.SeriesNumber) == rec["SeriesNumber"]
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
        seen.add(ds.SOPInstanceUID)
    assert seen == sops, (seen, sops)
