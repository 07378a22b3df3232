#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the hostile (and a few good) series zips in zips/ that test_unzip.c and the
# integration tests feed to tciafs. Deterministic: rerunning gives the same bytes.
# Names say what is expected: ok-* extract, bad-* must be refused.

import hashlib
import io
import os
import stat
import struct
import warnings
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "zips")
STAMP = (2015, 5, 27, 12, 0, 0)


def dcm(i, size=2000):
    body = (b"\0" * 128 + b"DICM" + bytes([i % 256]) * size)
    return body[:size]


def info(name, mode=0o100644, method=zipfile.ZIP_DEFLATED):
    zi = zipfile.ZipInfo(name, date_time=STAMP)
    zi.compress_type = method
    zi.create_system = 3
    zi.external_attr = mode << 16
    return zi


def write(name, entries):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # duplicate names are the point of one case
        with zipfile.ZipFile(buf, "w") as zf:
            for zi, data in entries:
                zf.writestr(zi, data)
    data = buf.getvalue()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return data


def flat(n, size=2000):
    return [(info("1-%03d.dcm" % i), dcm(i, size)) for i in range(1, n + 1)] + \
        [(info("LICENSE"), b"CC BY 4.0\n")]


def main():
    os.makedirs(OUT, exist_ok=True)
    write("ok-flat.zip", flat(3))
    write("ok-many.zip", flat(40, 5000))
    write("ok-stored.zip", [(info("a.dcm", method=zipfile.ZIP_STORED), dcm(1)),
                            (info("LICENSE"), b"x\n")])
    write("bad-empty.zip", [])
    write("bad-license-only.zip", [(info("LICENSE"), b"CC BY 4.0\n")])
    write("bad-dotdot.zip", flat(1) + [(info("../evil.dcm"), b"evil")])
    write("bad-absolute.zip", flat(1) + [(info("/tmp/tciafs-evil.dcm"), b"evil")])
    write("bad-subdir.zip", flat(1) + [(info("sub/1.dcm"), b"evil")])
    write("bad-dir-entry.zip", flat(1) + [(info("dir/", mode=0o40755), b"")])
    write("bad-symlink.zip", flat(1) + [(info("link.dcm", mode=0o120777), b"/etc/passwd")])
    write("bad-device.zip", flat(1) + [(info("dev.dcm", mode=stat.S_IFCHR | 0o644), b"")])
    write("bad-fifo.zip", flat(1) + [(info("fifo.dcm", mode=stat.S_IFIFO | 0o644), b"")])
    write("bad-duplicate.zip", flat(2) + [(info("1-001.dcm"), dcm(9))])
    write("bad-dotfile.zip", flat(1) + [(info(".hidden"), b"x")])
    write("bad-backslash.zip", flat(1) + [(info("..\\evil.dcm"), b"evil")])
    write("bad-control.zip", flat(1) + [(info("a\x01b.dcm"), b"evil")])
    write("bad-series-json.zip", flat(1) + [(info("series.json"), b"{}")])
    # A name that would forge a log line.
    write("bad-newline.zip", flat(1) + [(info("a.dcm\ntciafs: info: forged line"), b"x")])
    good = write("bad-crc.zip", flat(3))
    out = bytearray(good)
    name_len = struct.unpack("<H", out[26:28])[0]
    extra_len = struct.unpack("<H", out[28:30])[0]
    start = 30 + name_len + extra_len
    for i in range(start + 8, start + 24):
        out[i] ^= 0x5A
    with open(os.path.join(OUT, "bad-crc.zip"), "wb") as f:
        f.write(out)
    with open(os.path.join(OUT, "bad-truncated.zip"), "wb") as f:
        f.write(good[: len(good) // 2])
    with open(os.path.join(OUT, "bad-notzip.zip"), "wb") as f:
        f.write(b"<!doctype html><html><body><h1>HTTP Status 500</h1></body></html>")
    # A bomb: 200 MB of zeros in ~200 kB.
    write("bad-bomb.zip", [(info("bomb.dcm"), b"\0" * (200 << 20)), (info("LICENSE"), b"x")])
    # A liar: 4 MB inside, 1000 bytes declared in both headers.
    data = bytearray(write("bad-lying-size.zip", [(info("liar.dcm"), b"\1" * (4 << 20))]))
    real = struct.pack("<I", 4 << 20)
    fake = struct.pack("<I", 1000)
    data = bytes(data).replace(real, fake)
    with open(os.path.join(OUT, "bad-lying-size.zip"), "wb") as f:
        f.write(data)
    md5_zips()


def md5_zips():
    """Zips as getImageWithMD5Hash sends them: the files plus md5hashes.csv."""
    files = flat(3)
    sums = [(zi.filename, hashlib.md5(data).hexdigest()) for zi, data in files
            if zi.filename != "LICENSE"]

    def csv(rows, head="Filename,MD5Hash\n", end="\n"):
        return (head + "".join("%s,%s%s" % (n, h, end) for n, h in rows)).encode()

    def with_list(name, text):
        write(name, files + [(info("md5hashes.csv"), text)])

    with_list("md5-ok.zip", csv(reversed(sums)))
    # What other writers make of CSV: a byte-order mark, CRLF, quotes, capitals.
    with_list("md5-ok-quoted.zip", b"\xef\xbb\xbf" + csv(
        [('"%s"' % n, '"%s"' % h.upper()) for n, h in sums], '"Filename","MD5Hash"\r\n',
        "\r\n"))
    wrong = list(sums)
    wrong[1] = (wrong[1][0], hashlib.md5(b"other bytes").hexdigest())
    with_list("md5-bad-mismatch.zip", csv(wrong))
    with_list("md5-bad-missing.zip", csv(sums[:2]))
    with_list("md5-bad-extra.zip", csv(sums + [("1-009.dcm", sums[0][1])]))
    with_list("md5-bad-twice.zip", csv(sums + [sums[0]]))
    with_list("md5-bad-garbage.zip", csv(sums) + b"1-001.dcm;not-a-digest\n")
    with_list("md5-bad-short.zip", csv([(n, h[:31]) for n, h in sums]))


if __name__ == "__main__":
    main()
