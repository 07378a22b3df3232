# SPDX-License-Identifier: MIT
# Integration test harness: starts the fake TCIA and real tciafs mounts, and guarantees
# that whatever a test does or however it fails, every mount is unmounted and every
# process it started is stopped (Context.cleanup, called by run.py in a finally).

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE = os.path.join(ROOT, "tests", "fake-tcia", "fake_tcia.py")
FAKE_IDC = os.path.join(ROOT, "tests", "fake-idc", "fake_idc.py")
PYTHON = "/usr/bin/python3"
HERE_PYTHON = sys.executable


class TestFailure(AssertionError):
    pass


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise TestFailure("timed out after %.1fs waiting for %s" % (timeout, what))


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and decode_mount_path(fields[1]) == path:
                return True
    return False


def decode_mount_path(p):
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    return p.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def mounts_under(prefix):
    prefix = os.path.realpath(prefix)
    out = []
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1:
                p = decode_mount_path(fields[1])
                if p == prefix or p.startswith(prefix + "/"):
                    out.append(p)
    return out


class FakeServer:
    def __init__(self, workdir, args=(), script=FAKE, root="/nbia-api/"):
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "requests.log")
        self.url_file = os.path.join(workdir, "url")
        self.err_path = os.path.join(workdir, "fake.err")
        cmd = [PYTHON, script, "--url-file", self.url_file, "--log", self.log_path] + list(args)
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.err, stderr=self.err,
                                     stdin=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.url_file) or self.proc.poll() is not None,
                 30, "the fake server to listen")
        if self.proc.poll() is not None:
            raise TestFailure("fake server exited: " + open(self.err_path).read())
        with open(self.url_file) as f:
            self.url = f.read().strip()
        self.base = self.url.split(root)[0]

    def requests(self, endpoint=None):
        """The request log so far, as dicts (optionally only one endpoint's)."""
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path, encoding="utf-8") as f:
            entries = [json.loads(line) for line in f if line.strip()]
        if endpoint:
            entries = [e for e in entries if e.get("endpoint") == endpoint]
        return entries

    def fault(self, **rule):
        req = urllib.request.Request(self.base + "/_fake/faults",
                                     data=json.dumps(rule).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def reset_faults(self):
        req = urllib.request.Request(self.base + "/_fake/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def get(self, endpoint, timeout=30, **params):
        """GETs an endpoint with urllib; returns (status, headers, body bytes)."""
        q = urllib.parse.urlencode(params)
        url = self.url + "/" + endpoint + ("?" + q if q else "")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get_json(self, endpoint, **params):
        status, _, body = self.get(endpoint, **params)
        if status != 200:
            raise TestFailure("%s: HTTP %d" % (endpoint, status))
        return json.loads(body) if body.strip() else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


class Mount:
    def __init__(self, binary, mountpoint, api, cache_dir, workdir, options=(), args=()):
        self.mountpoint = mountpoint
        self.err_path = os.path.join(workdir, "tciafs-%d.err" % time.monotonic_ns())
        os.makedirs(mountpoint, exist_ok=True)
        opts = ["api=" + api, "cache_dir=" + cache_dir] + list(options)
        cmd = [binary, "-f", "-o", ",".join(opts)] + list(args) + [mountpoint]
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.err, stderr=self.err,
                                     stdin=subprocess.DEVNULL)
        self.exit_code = None
        try:
            wait_for(lambda: mounted(mountpoint) or self.proc.poll() is not None, 30,
                     "tciafs to mount")
        except TestFailure:
            self.stop()
            raise
        if not mounted(mountpoint):
            self.stop()
            raise TestFailure("tciafs exited with %s before mounting: %s"
                              % (self.proc.returncode, self.log()))

    def log(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def stop(self):
        """Unmounts and waits for the daemon; returns its exit status."""
        if mounted(self.mountpoint):
            r = subprocess.run(["fusermount3", "-u", self.mountpoint],
                               capture_output=True)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", self.mountpoint],
                               capture_output=True)
        if self.proc.poll() is None:
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        self.exit_code = self.proc.returncode
        return self.exit_code


class Context:
    """What one test gets: a private folder, and helpers that register what they start."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.servers = []
        self.mounts = []
        self._n = 0

    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def server(self, *args):
        self._n += 1
        d = self.path("server%d" % self._n)
        os.makedirs(d, exist_ok=True)
        s = FakeServer(d, args)
        self.servers.append(s)
        return s

    def idc_server(self, *args):
        """The fake IDC: its API at .url (…/v3), its buckets at .base + "/<bucket>"."""
        self._n += 1
        d = self.path("idc%d" % self._n)
        os.makedirs(d, exist_ok=True)
        s = FakeServer(d, args, script=FAKE_IDC, root="/v3")
        self.servers.append(s)
        return s

    def mount(self, server=None, api=None, options=(), cache_dir=None, name=None):
        self._n += 1
        mp = self.path(name or "mnt%d" % self._n)
        cache = cache_dir or self.path("cache%d" % self._n)
        m = Mount(self.binary, mp, api or server.url, cache, self.workdir, options)
        self.mounts.append(m)
        return m

    def unmount(self, m):
        """Unmounts now and checks the daemon exited cleanly (sanitizers report here)."""
        code = m.stop()
        if code != 0:
            raise TestFailure("tciafs exited with status %s:\n%s" % (code, m.log()))

    def cleanup(self):
        """Unmounts everything and stops every process; returns a list of problems."""
        problems = []
        for m in self.mounts:
            if m.exit_code is None:
                code = m.stop()
                if code != 0:
                    problems.append("tciafs exited with status %s:\n%s" % (code, m.log()))
        for s in self.servers:
            s.stop()
        left = mounts_under(self.workdir)
        for p in left:
            subprocess.run(["fusermount3", "-u", "-z", p], capture_output=True)
            problems.append("mount left behind: " + p)
        return problems


def run(cmd, check=True, timeout=120, **kw):
    """Runs an ordinary tool; returns CompletedProcess (text mode)."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise TestFailure("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr))
    return r


def kill_group(pgid, sig=signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
