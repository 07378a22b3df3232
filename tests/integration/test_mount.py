# SPDX-License-Identifier: MIT
# tciafs through a real FUSE mount: mounting makes no request, / lists the collections
# with safe names, README.txt says what this is, probes cost nothing, writes are EROFS,
# answers are cached, and the daemon exits cleanly on unmount.

import errno
import os
import subprocess
import time

from harness import ROOT, run


def test_mount_makes_no_request(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    os.stat(m.mountpoint)
    with open(os.path.join(m.mountpoint, "README.txt")) as f:
        f.read()
    assert s.requests() == [], s.requests()
    ctx.unmount(m)


def test_ls_lists_collections(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    out = run(["ls", m.mountpoint]).stdout.splitlines()
    want = sorted(["Lung-Phantom-CT", "CT COLONOGRAPHY", "Soft-tissue-Sarcoma",
                   "Odd_Names_Collection", "README.txt"])
    assert out == want, out
    assert len(s.requests("getCollectionValues")) == 1
    st = os.stat(os.path.join(m.mountpoint, "Lung-Phantom-CT"))
    assert (st.st_mode & 0o777) == 0o555 and os.path.isdir(os.path.join(m.mountpoint, "CT COLONOGRAPHY"))
    # Listing again, and stat of each entry, is answered from the cache.
    run(["ls", "-l", m.mountpoint])
    assert len(s.requests()) == 1, s.requests()
    ctx.unmount(m)


def test_readme(ctx):
    s = ctx.server()
    cache = ctx.path("my cache")
    m = ctx.mount(s, cache_dir=cache)
    path = os.path.join(m.mountpoint, "README.txt")
    text = run(["cat", path]).stdout
    assert cache in text and s.url in text and "<Collection>" in text
    assert os.stat(path).st_size == len(text.encode())
    assert os.path.isdir(cache) and (os.stat(cache).st_mode & 0o777) == 0o700


def test_probe_names_make_no_request(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    for name in (".hidden", ".directory", "desktop.ini", "autorun.inf", ".DS_Store",
                 "Thumbs.db", ".git", ".Trash", ".Trash-0", ".xdg-volume-info"):
        assert not os.path.exists(os.path.join(m.mountpoint, name)), name
    assert s.requests() == []


def test_writes_are_erofs(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    mp = m.mountpoint
    readme = os.path.join(mp, "README.txt")
    coll = os.path.join(mp, "Lung-Phantom-CT")
    for cmd in (["touch", os.path.join(mp, "new")], ["mkdir", os.path.join(mp, "d")],
                ["rm", "-f", readme], ["mv", readme, os.path.join(mp, "x")],
                ["rmdir", coll], ["chmod", "777", readme], ["ln", "-s", "x", os.path.join(mp, "l")],
                ["sh", "-c", "echo hi > '%s'" % readme]):
        r = run(cmd, check=False)
        assert r.returncode != 0 and "Read-only file system" in r.stderr, (cmd, r.stderr)
    try:
        os.open(readme, os.O_WRONLY)
        raise AssertionError("opened for writing")
    except OSError as e:
        assert e.errno == errno.EROFS
    assert "fuse.tciafs" in open("/proc/mounts").read()


def test_cached_list_survives_server_stop(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    first = run(["ls", m.mountpoint]).stdout
    s.stop()
    assert run(["ls", m.mountpoint]).stdout == first
    ctx.unmount(m)


def test_api_down_uncached_fails_fast(ctx):
    m = ctx.mount(api="http://127.0.0.1:1/nbia-api/services/v4",
                  options=["timeout=2", "retries=1"])
    r = run(["ls", m.mountpoint], check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr
    assert "127.0.0.1:1" in m.log()
    ctx.unmount(m)


def test_version_and_help(ctx):
    binary = os.environ["TCIAFS_BIN"]
    r = run([binary, "--version"])
    assert r.stdout.startswith("tciafs ")
    r = run([binary, "--help"])
    for opt in ("api=URL", "cache_dir=DIR", "timeout=", "retries=", "meta_ttl="):
        assert opt in r.stdout, opt
    r = run([binary, "-o", "api=notaurl", ctx.path()], check=False)
    assert r.returncode == 1 and "api=: not an http" in r.stderr and "notaurl" not in r.stderr
    r = run([binary], check=False)
    assert r.returncode == 1 and "mount point" in r.stderr


def test_mount_helper_form_and_bad_mountpoints(ctx):
    # mount -t fuse.tciafs runs mount.fuse3, which runs `tciafs SOURCE MOUNTPOINT -o opts`;
    # the daemon detaches (logs go to syslog) and unmounting ends it.
    s = ctx.server()
    mp = ctx.path("helper")
    cache = ctx.path("helper-cache")
    os.makedirs(mp)
    env = dict(os.environ, PATH=os.path.dirname(os.environ["TCIAFS_BIN"]) + ":" +
               os.environ["PATH"])
    # mount(8) resets PATH for safety, so call its FUSE helper directly, as it would.
    r = subprocess.run(["mount.fuse3", "tcia", mp, "-t", "tciafs", "-o",
                        "api=%s,cache_dir=%s" % (s.url, cache)], capture_output=True, text=True,
                       env=env, timeout=30)
    try:
        assert r.returncode == 0, r.stderr
        assert "Lung-Phantom-CT" in run(["ls", mp]).stdout
        # The detached daemon fetches series too (its workers start after the fork).
        rec = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0]
        d = os.path.join(mp, rec["Collection"], rec["PatientID"], rec["StudyInstanceUID"],
                         rec["SeriesInstanceUID"])
        assert "LICENSE" in run(["ls", d], timeout=60).stdout
    finally:
        subprocess.run(["fusermount3", "-u", mp], capture_output=True)
    r = subprocess.run(["pgrep", "-f", cache], capture_output=True, text=True)
    deadline = time.monotonic() + 10
    while r.stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.1)
        r = subprocess.run(["pgrep", "-f", cache], capture_output=True, text=True)
    assert r.stdout.strip() == "", "daemon still running after unmount"
    binary = os.environ["TCIAFS_BIN"]
    full = ctx.path("full")
    os.makedirs(full)
    open(os.path.join(full, "x"), "w").close()
    for args, msg in ((["-o", "api=" + s.url, full], "not empty"),
                      (["-o", "cache_size=lots", mp], "cache_size=lots"),
                      (["-o", "naming=odd", mp], "naming=odd"),
                      ([ctx.path("missing")], "No such file"),
                      (["a", "b", "c"], "too many arguments"),
                      (["-o", "bogus=1,cache_dir=" + ctx.path("c3"), mp], "unknown option")):
        r = run([binary] + args, check=False)
        assert r.returncode == 1 and msg in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_install_and_uninstall(ctx):
    dest = ctx.path("dest")
    env = dict(os.environ, MAKEFLAGS="")
    run(["make", "-C", ROOT, "install", "DESTDIR=" + dest, "PREFIX=/usr",
         "BUILD=" + os.path.dirname(os.environ["TCIAFS_BIN"])], env=env, timeout=300)
    for p in ("usr/bin/tciafs", "usr/bin/tciafs-prefetch", "usr/share/man/man1/tciafs.1",
              "usr/share/man/man1/tciafs-prefetch.1",
              "usr/share/doc/tciafs/mnt-tcia.mount"):
        assert os.path.exists(os.path.join(dest, p)), p
    assert run([os.path.join(dest, "usr/bin/tciafs"), "--version"]).stdout.startswith("tciafs")
    run(["make", "-C", ROOT, "uninstall", "DESTDIR=" + dest, "PREFIX=/usr"], env=env)
    left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
    assert left == [], left


def test_mount_t_and_fstab_line(ctx):
    # mount(8) finds the helper's program on its own PATH, not ours: put tciafs where an
    # installed one would be for the length of the test.
    link = "/usr/local/bin/tciafs"
    binary = os.environ["TCIAFS_BIN"]
    if os.path.lexists(link):
        assert os.path.realpath(link) == os.path.realpath(binary), \
            "%s exists and is another tciafs; cannot test mount(8) here" % link
        made = False
    else:
        os.symlink(binary, link)
        made = True
    s = ctx.server()
    mp = ctx.path("mt")
    os.makedirs(mp)
    fstab = ctx.path("fstab")
    with open(fstab, "w") as f:
        f.write("tcia %s fuse.tciafs ro,api=%s,cache_dir=%s 0 0\n" % (mp, s.url, ctx.path("c2")))
    try:
        r = run(["mount", "-t", "fuse.tciafs", "tcia", mp, "-o",
                 "api=%s,cache_dir=%s" % (s.url, ctx.path("c1"))])
        assert "fuse.tciafs" in open("/proc/mounts").read()
        assert "Lung-Phantom-CT" in run(["ls", mp]).stdout
        run(["umount", mp])
        assert mp not in open("/proc/mounts").read()
        run(["mount", "-T", fstab, mp])
        assert "CT COLONOGRAPHY" in run(["ls", mp]).stdout
        run(["fusermount3", "-u", mp])
        assert mp not in open("/proc/mounts").read()
    finally:
        subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True)
        if made:
            os.unlink(link)
