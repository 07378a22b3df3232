#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the hostile API answers in api/ that test_hostile.py serves through the fake
# (fault kind "body") in place of what an endpoint would say. Deterministic. The name of
# each file starts with the endpoint it stands in for; test_hostile.py says what tciafs
# must make of each (a clean listing with safe names, or an errno and one log line).

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "api")
sys.path.insert(0, os.path.join(HERE, "..", "fake-tcia"))
import archive  # noqa: E402

LONG = "L" * 10240          # a 10 kB name
HOSTILE_NAMES = ["../../etc", ".", "..", "a/b", "/", "ctl\x01\x1f\x7fend", LONG, "",
                 "README.txt", "manifests", ".hidden", "tab\there", "nul\x00after",
                 "ok-name", "evil\u202egpj.exe", "\u2066isolate\u2069"]


def write(name, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    arc = archive.Archive()
    study = next(s for s in arc.studies if s["Collection"] == "Lung-Phantom-CT")
    # Names that must come out as safe, distinct, reachable path components.
    write("getCollectionValues-names.json",
          json.dumps([{"Collection": n} for n in HOSTILE_NAMES]))
    write("getPatient-names.json", json.dumps(
        [{"PatientId": n, "Collection": "Lung-Phantom-CT"} for n in HOSTILE_NAMES] +
        [{"PatientId": n, "Collection": "Lung-Phantom-CT"} for n in
         ("collection.json", "patients.csv", "CITATION.txt")] +
        # Wrong types: a number is a name ("42"); an object, an array, null, true and a
        # missing key are no patient at all.
        [{"PatientId": 42}, {"PatientId": {"a": 1}}, {"PatientId": [1]},
         {"PatientId": None}, {"PatientId": True}, {"Collection": "no id"}]))
    # Every field of a series with the wrong type; one good UID pair so it is shown.
    wrong = [{"a": 1}, [1, 2], None, True, 3.5, -7, "", "x" * 10240]
    series = []
    for i, w in enumerate(wrong):
        series.append({
            "SeriesInstanceUID": "1.2.826.0.1.3680043.9.7777.%d" % (i + 1),
            "StudyInstanceUID": study["StudyInstanceUID"],
            "PatientID": study["PatientID"], "Collection": "Lung-Phantom-CT",
            "Modality": w, "SeriesDate": w, "SeriesDescription": w,
            "BodyPartExamined": w, "SeriesNumber": w, "Manufacturer": w,
            "ManufacturerModelName": w, "ImageCount": w, "TimeStamp": w,
            "LicenseName": w, "LicenseURI": w, "CollectionURI": w, "FileSize": w,
            "DateReleased": w, "StudyDesc": w, "StudyDate": w})
    # A UID that is a path: listed under a safe name, never used as one.
    series.append({"SeriesInstanceUID": "../../../../../../tmp/tciafs-evil",
                   "StudyInstanceUID": study["StudyInstanceUID"],
                   "Collection": "Lung-Phantom-CT", "Modality": "CT", "SeriesNumber": 99,
                   "SeriesDescription": "evil", "ImageCount": 1, "FileSize": 10})
    series.append({"SeriesInstanceUID": {"not": "a uid"}, "StudyInstanceUID": 5})
    # A NUL inside a UID: cut there it would be another series' identity (issue 14).
    real = next(s for s in arc.all_series() if s["Collection"] == "Lung-Phantom-CT")
    series.append({"SeriesInstanceUID": real["SeriesInstanceUID"] + "\u0000" + "4",
                   "StudyInstanceUID": study["StudyInstanceUID"],
                   "Collection": "Lung-Phantom-CT", "Modality": "CT", "SeriesNumber": 98,
                   "SeriesDescription": "nul", "ImageCount": 1, "FileSize": 10,
                   "CollectionURI": "https://doi.org/10.1/x\nHow to cite: forged"})
    series.append({"SeriesInstanceUID": None})
    write("getSeries-wrong-types.json", json.dumps(series))
    # Answers that are not what the API documents: each must be an errno, not a crash.
    write("getCollectionValues-deep-list.json", "[" * 100000 + "]" * 100000)
    write("getCollectionValues-deep-field.json",
          '[{"Collection":' + '{"a":' * 50000 + '1' + '}' * 50000 + '}]')
    write("getCollectionValues-object.json", '{"Collection":"not a list"}')
    write("getCollectionValues-bad-utf8.json", b'[{"Collection":"\xff\xfe"}]')
    write("getCollectionValues-unterminated.json", '[{"Collection":"a"},{"Collection":"b')
    write("getCollectionValues-scalars.json", '[1,"two",null,true]')
    write("getCollectionValues-duplicate-keys.json", '[{"Collection":"a","Collection":"b"}]')


if __name__ == "__main__":
    main()
