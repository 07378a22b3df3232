# SPDX-License-Identifier: MIT
# The legacy bearer-token flow (tcia-api.md §1) against the fake with --auth: a password
# grant, reuse until expiry, a refresh grant, a new token after a 401, clear failures for
# bad or loosely protected credentials, and secrets that never reach argv or a log.

import os
import subprocess
import time

from test_client import EACCES_CODE, EIO, query

EPERM = 1


def token_file(ctx, s, password="s3cret-pw", mode=0o600):
    path = ctx.path("token")
    with open(path, "w") as f:
        f.write("# TCIA credentials\nusername = alice\npassword = %s\ntoken_url = %s/auth/token\n"
                % (password, s.base))
    os.chmod(path, mode)
    return path


def grants(s):
    return [e["query"]["grant_type"] for e in s.requests("token")]


def test_without_token_is_eacces(ctx):
    s = ctx.server("--auth", "alice:s3cret-pw")
    query(s, "collections", opts=["-r", "0"], expect=EACCES_CODE)
    assert s.requests("getCollectionValues")[0]["status"] == 401


def test_password_grant_then_reuse(ctx):
    s = ctx.server("--auth", "alice:s3cret-pw")
    out, err, _ = query(s, "collections", opts=["-a", token_file(ctx, s), "-n", "5"])
    assert len(out["result"]) >= 4
    assert grants(s) == ["password"]
    assert [e["status"] for e in s.requests("getCollectionValues")] == [200] * 5
    assert "s3cret-pw" not in err


def test_refresh_grant_when_expired(ctx):
    # Tokens that live 2 s: reused at once, renewed with the refresh token 2.5 s later.
    s = ctx.server("--auth", "alice:s3cret-pw", "--token-ttl", "2")
    out, _, _ = query(s, "collections", opts=["-a", token_file(ctx, s), "-n", "2"])
    assert grants(s) == ["password"], grants(s)
    out, _, _ = query(s, "collections", opts=["-a", token_file(ctx, s), "-n", "3",
                                              "-w", "2500"])
    assert grants(s) == ["password", "password", "refresh_token", "refresh_token"], grants(s)
    assert all(e["status"] == 200 for e in s.requests("getCollectionValues"))


def test_revoked_token_is_renewed_once(ctx):
    s = ctx.server("--auth", "alice:s3cret-pw")
    path = token_file(ctx, s)
    # Between two calls the server forgets every token (a restart, a revocation): the
    # 401 makes the client renew (refresh grant) and try again once.
    p = subprocess.Popen([os.environ["TCIAFS_QUERY"], "-a", path, "-n", "2", "-w", "1500", s.url, "patients",
                          "Collection=CT COLONOGRAPHY"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    while not s.requests("getPatient"):
        time.sleep(0.05)
    subprocess.run(["curl", "-s", "-X", "POST", s.base + "/_fake/revoke"], check=True,
                   capture_output=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    statuses = [e["status"] for e in s.requests("getPatient")]
    assert statuses == [200, 401, 200], statuses
    assert grants(s) == ["password", "refresh_token"], grants(s)


def test_401_mid_session_gets_new_token(ctx):
    s = ctx.server("--auth", "alice:s3cret-pw")
    s.fault(kind="status", status=401, endpoint="getPatient", times=1)
    out, err, _ = query(s, "patients", "Collection=CT COLONOGRAPHY",
                        opts=["-a", token_file(ctx, s), "-r", "0"])
    assert len(out["result"]) == 2
    assert [e["status"] for e in s.requests("getPatient")] == [401, 200]
    assert len(grants(s)) == 2 and "renewing the access token" in err


def test_bad_password_is_eacces_and_not_logged(ctx):
    s = ctx.server("--auth", "alice:s3cret-pw")
    _, err, _ = query(s, "collections", opts=["-a", token_file(ctx, s, password="wrong-pw"),
                                              "-r", "0"], expect=EACCES_CODE)
    assert "password grant failed" in err
    assert "wrong-pw" not in err and "alice" not in err


def test_loose_permissions_refused(ctx):
    s = ctx.server("--auth", "alice:s3cret-pw")
    _, err, _ = query(s, "collections", opts=["-a", token_file(ctx, s, mode=0o644)],
                      expect=EPERM)
    assert "chmod 600" in err
    assert s.requests() == []


def test_mount_with_token_file(ctx):
    s = ctx.server("--auth", "alice:s3cret-pw")
    m = ctx.mount(s, options=["token_file=" + token_file(ctx, s)])
    names = subprocess.run(["ls", m.mountpoint], capture_output=True, text=True).stdout
    assert "Lung-Phantom-CT" in names
    # The secret is in no process's argv and no log.
    with open("/proc/%d/cmdline" % m.proc.pid, "rb") as f:
        assert b"s3cret" not in f.read()
    ctx.unmount(m)
    assert "s3cret" not in m.log()


def test_password_never_follows_a_redirect(ctx):
    # Issue 14 #1: the token endpoint answers the password POST with a 307 to another
    # origin. The form must not be sent there: the grant fails with one log line.
    s = ctx.server("--auth", "alice:s3cret-pw")
    other = ctx.server("--auth", "alice:s3cret-pw")
    s.fault(kind="redirect", endpoint="token", status=307, location=other.base + "/auth/token")
    _, err, _ = query(s, "collections", opts=["-a", token_file(ctx, s), "-r", "0"],
                      expect=EIO)
    assert other.requests() == [], other.requests()
    assert "redirect not followed" in err, err
    assert "s3cret-pw" not in err
    # A plain GET may follow a redirect (to the same place here), but the bearer token
    # is never sent to another origin: the other server sees a request without it.
    s.reset_faults()
    s.fault(kind="redirect", endpoint="getCollectionValues", status=302,
            location=other.url + "/getCollectionValues")
    query(s, "collections", opts=["-a", token_file(ctx, s), "-r", "0"], expect=EACCES_CODE)
    hits = other.requests("getCollectionValues")
    assert hits and not any(e["authorization"] for e in hits), hits
    assert all(e["authorization"] for e in s.requests("getCollectionValues"))
