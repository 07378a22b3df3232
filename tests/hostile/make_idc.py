#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the hostile IDC answers in idc/ that test_idc_mount.py serves through the fake
# IDC (fault kind "body") in place of what an endpoint would say. Deterministic. Each
# file starts with the endpoint it stands in for (collections, sql, list).

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "idc")
S3 = "http://s3.amazonaws.com/doc/2006-03-01/"

HOSTILE_NAMES = ["../../etc", ".", "..", "a/b", "/", "ctl\x01\x1f\x7fend", "L" * 10240, "",
                 "README.txt", ".hidden", "x' OR '1'='1", "'; DROP TABLE \"index\"; --",
                 "evil\u202egpj.exe", "ok-name"]


def write(name, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def listing(contents, truncated=False, extra=""):
    items = "".join("<Contents><Key>%s</Key><Size>%s</Size></Contents>" % kv
                    for kv in contents)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="%s">'
            "<IsTruncated>%s</IsTruncated>%s%s</ListBucketResult>"
            % (S3, "true" if truncated else "false", extra, items))


def sql(rows):
    cols = sorted({k for r in rows for k in r})
    return json.dumps({"columns": cols, "rows": rows, "row_count": len(rows),
                       "truncated": False, "max_rows": 10000})


def main():
    os.makedirs(OUT, exist_ok=True)
    # Collection names and ids that must come out as safe folder names, or be refused.
    write("collections-names.json", json.dumps(
        [{"collection_id": "id%d" % i, "collection_name": n} for i, n in
         enumerate(HOSTILE_NAMES)]))
    # A patient list whose IDs are paths, controls and SQL.
    write("sql-patients-names.json", sql(
        [{"PatientID": n, "collection_id": "tcga_luad", "PatientAge": None,
          "PatientSex": None, "studies": 1} for n in HOSTILE_NAMES if n]))
    # A series whose files' place would leave the bucket (or the URL) if pasted.
    uid = "1.2.3.4.5"
    for name, bucket, uuid in (("bucket", "../../etc", "0ee3d02e-001a-4099-8b26-82314f317008"),
                               ("uuid", "idc-open-data", "../../../etc/passwd"),
                               ("host", "evil.example.com/x?", "abc")):
        write("sql-series-where-%s.json" % name, sql([{
            "collection_id": "tcga_luad", "PatientID": "TCGA-05-4244",
            "StudyInstanceUID": "1.2.3.4", "SeriesInstanceUID": uid, "Modality": "CT",
            "SeriesNumber": "1", "SeriesDescription": "where", "instanceCount": 1,
            "series_size_MB": 0.001, "aws_bucket": bucket, "crdc_series_uuid": uuid}]))
    # Listings: an XML bomb, a malformed one, sizes that are not sizes, keys that are
    # paths, a page that says more and gives no token. UUID stands for the series folder
    # listed: the test puts the real one in.
    bomb = ['<?xml version="1.0"?>', "<!DOCTYPE lolz [", '<!ENTITY lol "lol">']
    for i in range(1, 10):
        bomb.append('<!ENTITY lol%d "%s">' % (i, ("&lol%s;" % ("" if i == 1 else i - 1)) * 10))
    bomb.append("]>")
    bomb.append('<ListBucketResult xmlns="%s"><Contents><Key>&lol9;</Key><Size>1</Size>'
                "</Contents></ListBucketResult>" % S3)
    write("list-bomb.xml", "\n".join(bomb))
    write("list-malformed.xml", listing([("a.dcm", "10")])[:-30])
    write("list-sizes.xml", listing([("UUID/a.dcm", "-5"), ("UUID/b.dcm", "1e3"),
                                     ("UUID/c.dcm", "99999999999999999999999")]))
    write("list-keys.xml", listing([("UUID/../../etc/passwd.dcm", "10"), ("UUID/a/b.dcm", "10"),
                                    ("UUID/.hidden.dcm", "10"), ("UUID/-x.dcm", "10")]))
    write("list-no-token.xml", listing([], truncated=True))


if __name__ == "__main__":
    main()
