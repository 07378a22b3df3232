# SPDX-License-Identifier: MIT
# tciafs-prefetch through a real mount: --dry-run sizes the work without fetching; a
# collection or a file of UIDs is fetched in parallel (past the walk guard, which is for
# accidental walks), with progress lines off a terminal and a bar on one; failures make
# exit status 1; Ctrl-C stops at once with status 130.

import os
import pty
import select
import signal
import subprocess
import time

from harness import ROOT, run, wait_for


def prefetch(*args, check=True, timeout=120):
    return run([os.path.join(os.path.dirname(os.environ["TCIAFS_BIN"]), "tciafs-prefetch")]
               + list(args), check=check, timeout=timeout)


def getimage(s):
    return [e for e in s.requests("getImage") if e["ua"].startswith("tciafs/")]


def test_dry_run_then_fetch_a_collection(ctx):
    s = ctx.server()
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["walk_budget=2"])
    coll = os.path.join(m.mountpoint, "Soft-tissue-Sarcoma")
    series = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma")
    r = prefetch("--dry-run", coll)
    assert r.stdout.startswith("%d series, " % len(series)), r.stdout
    assert getimage(s) == []
    r = prefetch("-j", "3", coll)
    assert r.returncode == 0
    assert sorted(os.listdir(os.path.join(cache, "series"))) == \
        sorted(x["SeriesInstanceUID"] for x in series)
    assert len(getimage(s)) == len(series)      # not held back by walk_budget=2
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("tciafs-prefetch: %d/%d series" % (len(series), len(series)))
    # Again: everything is there, nothing is fetched.
    prefetch(coll)
    assert len(getimage(s)) == len(series)


def test_uid_file(ctx):
    s = ctx.server()
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    uids = [x["SeriesInstanceUID"] for x in s.get_json("getSeries", Collection="CT COLONOGRAPHY")]
    path = ctx.path("uids.txt")
    with open(path, "w") as f:
        f.write("# a manifest\n" + "\n".join(uids) + "\n\n")
    r = prefetch("--uids", path, m.mountpoint)
    assert r.stdout.startswith("%d series" % len(uids)), r.stdout
    assert sorted(os.listdir(os.path.join(cache, "series"))) == sorted(uids)
    with open(path, "a") as f:
        f.write("1.2.3.999\n")
    r = prefetch("--uids", path, m.mountpoint, check=False)
    assert r.returncode == 1 and "1.2.3.999" in r.stderr


def test_failures_set_the_exit_status(ctx):
    s = ctx.server()
    m = ctx.mount(s, options=["retries=0"])
    recs = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    assert len(recs) >= 3
    bad = recs[0]["SeriesInstanceUID"]
    s.fault(kind="status", status=500, endpoint="getImage", series=bad)
    # Two refused zips: beside each series, tciafs's reason; in the summary, one kind.
    for rec in recs[1:3]:
        s.fault(kind="zipfile", endpoint="getImage", series=rec["SeriesInstanceUID"],
                path=os.path.join(ROOT, "tests", "hostile", "zips", "bad-dotdot.zip"))
    r = prefetch(os.path.join(m.mountpoint, "Lung-Phantom-CT"), check=False)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    mine = [l for l in lines if bad in l and "tciafs-prefetch: /" in l]
    assert mine and "Input/output error: GET" in mine[0] and "HTTP 500" in mine[0], lines
    refused = [l for l in lines if "refusing entry name" in l and "tciafs-prefetch: /" in l]
    assert len(refused) == 2 and all('"../evil.dcm"' in l for l in refused), lines
    i = lines.index("tciafs-prefetch: 3 series failed:")
    summary = lines[i + 1:i + 3]
    assert summary[0].split(None, 1) == ["2", "Input/output error: bad zip: refusing entry name"], summary
    assert summary[1].split(None, 1)[0] == "1" and "HTTP 500" in summary[1], summary


def test_ctrl_c_stops_at_once(ctx):
    s = ctx.server("--big-mb", "6")
    s.fault(kind="slow", endpoint="getImage", rate=500000)
    m = ctx.mount(s)
    p = subprocess.Popen([os.path.join(os.path.dirname(os.environ["TCIAFS_BIN"]),
                                       "tciafs-prefetch"), os.path.join(m.mountpoint, "Big-Series")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: getimage(s) or os.path.exists("/nonexistent") or _fetching(m), 30,
             "the download to start")
    time.sleep(0.3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130, (p.returncode, err)
    assert time.monotonic() - t0 < 3
    assert "stopped" in err


def _fetching(m):
    import json
    with open(os.path.join(m.mountpoint, ".tciafs", "status")) as f:
        return bool(json.load(f)["fetches"])


def test_progress_bar_on_a_terminal(ctx):
    s = ctx.server()
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(os.path.join(os.path.dirname(os.environ["TCIAFS_BIN"]), "tciafs-prefetch"),
                 ["tciafs-prefetch", os.path.join(m.mountpoint, "Lung-Phantom-CT")])
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if not r:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    text = out.decode(errors="replace")
    n = len(s.get_json("getSeries", Collection="Lung-Phantom-CT"))
    assert "\r[" in text and "ETA" in text, text
    # The bar's last state: full, every series done.
    last = text.rstrip().split("\r")[-1]
    assert "[" + "#" * 30 + "]" in last and "%d/%d series" % (n, n) in last, last
    assert len(os.listdir(os.path.join(cache, "series"))) == n


def test_manifest_and_facet_folders(ctx):
    # The views' entries are symbolic links: prefetch follows them to their series, once.
    s = ctx.server()
    cache = ctx.path("cache")
    uids = [x["SeriesInstanceUID"] for x in s.get_json("getSeries", Collection="CT COLONOGRAPHY")]
    man = ctx.path("colon.txt")
    with open(man, "w") as f:
        f.write("\n".join(uids[:3] + ["1.2.3.999"]) + "\n")
    m = ctx.mount(s, cache_dir=cache, options=["manifest=" + man])
    r = prefetch(os.path.join(m.mountpoint, "manifests", "colon"))
    assert r.returncode == 0, r
    assert sorted(os.listdir(os.path.join(cache, "series"))) == sorted(uids[:3])
    lung = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    r = prefetch("--dry-run", os.path.join(m.mountpoint, "Lung-Phantom-CT", ".by-modality", "CT"))
    assert r.stdout.startswith("%d series, " % len(lung)), r.stdout


def test_uids_resolve_and_download_as_a_pipeline(ctx):
    # 300 ms for each getSeries: resolving 8 UIDs one after another before any download
    # (as before) would start the first getImage after every lookup. Now each worker
    # resolves its UID and fetches it, four at a time.
    s = ctx.server("--scale", "2", "--series-size-delay", "0")
    uids = [r["SeriesInstanceUID"] for r in s.get_json("getSeries", Collection="Scale-Test")][:8]
    path = ctx.path("uids.txt")
    with open(path, "w") as f:
        f.write("\n".join(uids) + "\n")
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    s.fault(kind="delay", endpoint="getSeries", seconds=0.3)
    r = prefetch("-j", "4", "--uids", path, m.mountpoint)
    assert r.stdout.startswith("8 series"), r.stdout
    assert sorted(os.listdir(os.path.join(cache, "series"))) == sorted(uids)
    lookups = [e["t"] for e in s.requests("getSeries") if "SeriesInstanceUID" in e["query"]]
    images = [e["t"] for e in getimage(s)]
    # The first download goes out before the first lookup's answer (300 ms) is back.
    assert lookups and min(images) < min(lookups) + 0.25, (sorted(images)[:2], sorted(lookups))
