"""Debian's nginx running deploy/nginx/pumpstream.conf itself, in front of a test's Daphne processes.

The site is derived from the repository's file when the test runs (`site_for_test`): only the addresses change
(each upstream's `server` lines point at the test's Daphne ports, their parameters kept; the TLS listener
becomes a plain-HTTP one on a free loopback port; the port-80 redirect is dropped), so its locations, headers,
hashing and WebSocket upgrade are what the test exercises. nginx runs in the foreground (`daemon off`), as a
non-root user (`nobody` when the tests run as root), with its prefix, temporary directories, pid file, error
log and an access log naming the upstream(s) tried for each request in a directory of its own.

`scripts/setup.sh --test` installs nginx with CI=true or WITH_NGINX=true; where it is absent the tests that
need it skip, except under CI=true, where a missing nginx fails them.
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import ROOT, free_port, stop, wait_for_port

SITE = ROOT / "deploy" / "nginx" / "pumpstream.conf"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# Each request's end (a WebSocket's is its close) and duration, and its upstream address(es): "A, B" when nginx
# gave up on A and passed the request to B.
ACCESS_FORMAT = "'$msec $request_time $request_method $uri $status upstreams=[$upstream_addr]'"


def nginx_or_skip() -> str:
    """nginx's path; skips the test where it is missing, fails it under CI=true (CI installs it)."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        message = "nginx is not installed: run `WITH_NGINX=true scripts/setup.sh --test` (as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI installs it, so its absence is a failure")
        pytest.skip(message)
    return found


def site_for_test(text: str, *, listen_port: int, daphne_ports: list[int]) -> str:
    """The production site with the test's addresses: ValueError where the file no longer has the expected shape."""

    def upstream(match: re.Match) -> str:
        addresses = re.findall(r"^\s*server 127\.0\.0\.1:\d+", match.group(0), re.M)
        if len(addresses) != len(daphne_ports):
            raise ValueError(f"upstream {match.group(1)} lists {len(addresses)} servers, the test runs "
                             f"{len(daphne_ports)} Daphne")  # fmt: skip
        ports = iter(daphne_ports)
        return re.sub(r"server 127\.0\.0\.1:\d+", lambda _: f"server 127.0.0.1:{next(ports)}", match.group(0))

    site, upstreams = re.subn(r"upstream (\w+) \{.*?\}", upstream, text, flags=re.S)
    site, redirects = re.subn(r"server \{[^{}]*return 301[^{}]*\}\n*", "", site)
    site, tls_listeners = re.subn(r"^(\s*)listen 443 ssl[^;]*;\n\s*listen \[::\]:443 ssl[^;]*;",
                                  rf"\1listen 127.0.0.1:{listen_port};", site, flags=re.M)  # fmt: skip
    site = re.sub(r"^\s*ssl_\w+ [^;]*;\n", "", site, flags=re.M)
    if (upstreams, redirects, tls_listeners) != (2, 1, 1) or re.search(r"^\s*(ssl_|listen .*ssl)", site, re.M):
        raise ValueError(f"{SITE.name} changed shape: {upstreams} upstreams, {redirects} redirect, "
                         f"{tls_listeners} TLS listener found; update tests/support/nginx.py")  # fmt: skip
    return site


class NginxProxy:
    """One nginx in front of `daphne_ports`; `url` is its plain-HTTP listener."""

    def __init__(self, daphne_ports: list[int], *, site_text: str | None = None) -> None:
        self.program = nginx_or_skip()
        self.port = free_port()
        self.site_text = site_for_test(site_text or SITE.read_text(), listen_port=self.port, daphne_ports=daphne_ports)
        self.runas = _unprivileged() if os.geteuid() == 0 else None
        self.directory = Path(tempfile.mkdtemp(prefix="pumpstream-nginx-"))  # nginx's own prefix
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def _main_config(self) -> str:
        temp = "".join(f"    {name}_temp_path {self.directory / name};\n" for name in TEMP_PATHS)
        return (f"daemon off;\nworker_processes 1;\npid {self.directory}/nginx.pid;\n"
                f"error_log {self.error_log} warn;\nevents {{\n    worker_connections 512;\n}}\nhttp {{\n{temp}"
                f"    log_format upstreams {ACCESS_FORMAT};\n    access_log {self.access_log} upstreams;\n"
                f"    include {self.directory / 'pumpstream.conf'};\n}}\n")  # fmt: skip

    def start(self) -> "NginxProxy":
        (self.directory / "pumpstream.conf").write_text(self.site_text)
        (self.directory / "nginx.conf").write_text(self._main_config())
        for path in [self.directory, *(self.directory / name for name in TEMP_PATHS)]:
            path.mkdir(exist_ok=True)
            if self.runas is not None:
                os.chown(path, self.runas.pw_uid, self.runas.pw_gid)
        as_user = {"user": self.runas.pw_uid, "group": self.runas.pw_gid, "extra_groups": []} if self.runas else {}
        config = self.directory / "nginx.conf"
        self.process = subprocess.Popen(
            [self.program, "-p", str(self.directory), "-e", str(self.error_log), "-c", str(config)],
            stdout=subprocess.DEVNULL, stderr=(self.directory / "stderr.log").open("ab"), **as_user,
        )  # fmt: skip
        try:
            wait_for_port(self.port, process=self.process, timeout=20)
        except (RuntimeError, TimeoutError) as exc:
            stop(self.process, sig=signal.SIGKILL)
            raise RuntimeError(f"nginx did not start: {self.log_tail()}") from exc
        return self

    def requests_begun_after(self, since: float, uri_prefix: str = "/") -> list[tuple[str, str]]:
        """(status, upstreams tried) of each request under `uri_prefix` that began after `since` (wall clock) and
        has ended (nginx logs a request when it ends, a WebSocket when it closes)."""
        found = []
        for line in self.access_log.read_text().splitlines():
            end, duration, _method, uri, status, tried = line.split(" ", 5)
            if uri.startswith(uri_prefix) and float(end) - float(duration) >= since:
                found.append((status, tried.removeprefix("upstreams=[").removesuffix("]")))
        return found

    def log_tail(self, lines: int = 30) -> str:
        found = [p for p in (self.error_log, self.directory / "stderr.log") if p.exists()]
        return "\n".join(line for p in found for line in p.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, keep_logs_in: Path | None = None) -> None:
        """Stop nginx (SIGTERM: at once), keep its logs in `keep_logs_in`, remove its directory."""
        try:
            if self.process is not None:
                stop(self.process, timeout=5)
        finally:
            if keep_logs_in is not None:
                for log in (self.error_log, self.access_log):
                    if log.exists():
                        shutil.copy(log, keep_logs_in / f"nginx-{self.port}-{log.name}")
            shutil.rmtree(self.directory, ignore_errors=True)


def _unprivileged() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise pytest.UsageError("running as root and no `nobody` user to run nginx as") from None
