"""The production layout in deploy/: nginx's own `nginx -t` on the site config, and the systemd units' promises.

nginx is Debian's package (scripts/setup.sh installs it under CI=true or WITH_NGINX=true): without it the nginx
check is skipped, except under CI=true, where a missing nginx fails the run instead of hiding the check.
"""

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.nginx import nginx_or_skip

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "pumpstream.conf"
UNITS = ROOT / "deploy" / "systemd"
TLS_DIR = "/etc/pumpstream/tls/"  # where the site expects the certificate; the test points it at its own


def self_signed(directory: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pumpstream.test",
         "-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


def nginx_test(site_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`nginx -t -c` on a main config that includes `site_text` as Debian's nginx.conf includes a site."""
    self_signed(tmp_path)
    site = tmp_path / "pumpstream.conf"
    site.write_text(site_text.replace(TLS_DIR, f"{tmp_path}/"))
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\nhttp {{\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in
                  (("client_body", temp["body"]), *((n, temp[n]) for n in ("proxy", "fastcgi", "uwsgi", "scgi"))))
        + f"    access_log off;\n    include {site};\n}}\n"
    )  # fmt: skip
    return subprocess.run([nginx_or_skip(), "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                           "-c", str(main)], capture_output=True, text=True)  # fmt: skip


def test_the_nginx_site_passes_nginx_own_check(tmp_path):
    result = nginx_test(SITE.read_text(), tmp_path)
    assert result.returncode == 0, f"nginx -t refused deploy/nginx/pumpstream.conf:\n{result.stderr}"


def test_the_nginx_check_can_fail(tmp_path):
    broken = SITE.read_text().replace(
        "proxy_pass http://pumpstream_realtime;", "proxy_pass http://pumpstream_realtime", 1
    )
    assert nginx_test(broken, tmp_path).returncode != 0, "a missing semicolon must fail nginx -t"


def test_socketio_and_channels_are_sticky_and_both_upstreams_list_the_same_daphnes():
    text = SITE.read_text()
    for location in ("/socket.io/", "/ws/"):
        block = text.split(f"location {location} {{", 1)[1].split("}", 1)[0]
        assert "proxy_pass http://pumpstream_realtime;" in block, location
    upstreams = dict(re.findall(r"upstream (\w+) \{(.*?)\}", text, re.S))
    assert "hash $cookie_sessionid consistent;" in upstreams["pumpstream_realtime"]
    servers = {name: re.findall(r"server (\S+);", body) for name, body in upstreams.items()}
    assert servers["pumpstream_web"] == servers["pumpstream_realtime"] and len(servers["pumpstream_web"]) >= 2


def test_every_header_to_daphne_is_set_for_the_whole_server_and_no_location_drops_them():
    """A location with a `proxy_set_header` of its own inherits none of the server's (nginx's rule): Daphne then
    got `Host: pumpstream_web` and the client's own X-Forwarded-For (tests/deploy/test_nginx_headers.py shows it)."""
    server = SITE.read_text().split("listen 443", 1)[1]
    locations = re.findall(r"location ([^{]+)\{([^}]*)\}", server)
    assert len(locations) >= 4 and not [name for name, body in locations if "proxy_set_header" in body]
    for header in ("Host $host", "X-Forwarded-For $remote_addr", "X-Forwarded-Proto $scheme",
                   "Upgrade $http_upgrade", "Connection $pumpstream_connection"):  # fmt: skip
        assert f"proxy_set_header {header};" in server, header


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("name", ["pumpstream-web@.service", "pumpstream-web.service", "pumpstream-bridge.service",
                                  "pumpstream-bridge@.service", "pumpstream-housekeeping.service"])  # fmt: skip
def test_every_process_restarts_on_failure_and_runs_a_command_of_this_project(name):
    service = unit(name)["Service"]
    assert service["Restart"] == "on-failure"
    command = service["ExecStart"]
    for managed in re.findall(r"manage\.py (\w+)", command):
        commands = [*ROOT.glob(f"*/management/commands/{managed}.py")]
        assert commands, f"{name} runs manage.py {managed}, which does not exist"
    if "daphne" in command:
        assert "pumpstream.asgi:application" in command and "-b 127.0.0.1" in command


def test_the_templated_daphne_listens_where_nginx_sends_and_its_internal_port_is_the_next_one():
    command = unit("pumpstream-web@.service")["Service"]["ExecStart"]
    assert "-p %i" in command and "REALTIME_INTERNAL_PORT=$$((%i + 1))" in command
    assert "tcp:port=$$REALTIME_INTERNAL_PORT:interface=127.0.0.1" in command
    ports = {int(port.split(":")[1]) for port in re.findall(r"server (127\.0\.0\.1:\d+);", SITE.read_text())}
    assert not ports & {port + 1 for port in ports}, "a Daphne's internal port (port+1) must not be another's public"


def test_the_target_starts_only_the_units_enabled_each_process_wanted_through_its_own_install():
    """Review 34: `pumpstream.target` wanted `pumpstream-bridge.service`, so in the K-bridge layout (units
    pumpstream-bridge@INDEX enabled, the single one not) it started a single bridge beside them. Each process's unit is
    wanted by the target through its own [Install] and stops with it (PartOf); the target names no process itself."""
    wanted = unit("pumpstream.target")["Unit"].get("Wants", "").split()
    assert not [name for name in wanted if name.endswith(".service")], wanted
    for name in ("pumpstream-web@.service", "pumpstream-web.service", "pumpstream-bridge.service",
                 "pumpstream-bridge@.service"):  # fmt: skip
        parsed = unit(name)
        assert "pumpstream.target" in parsed["Install"]["WantedBy"].split(), name
        assert parsed["Unit"]["PartOf"] == "pumpstream.target", name
