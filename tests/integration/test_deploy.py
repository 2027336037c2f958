"""The deployment pieces under deploy/, checked with the real tools where this machine has them:

- HAProxy (`haproxy -c`) and nginx (`nginx -t`, with temporary pid and log paths) accept the
  committed configurations; the HAProxy one checks /readyz on the admin listener;
- `systemd-analyze verify` accepts the unit (ExecStart pointed at the built binary) without a
  single warning, and the unit is Type=notify with the reload and hardening it promises;
- the Kubernetes manifests build with `kubectl kustomize` (offline), parse, and have the probes,
  security context and grace period promised; the ConfigMap's gateway.toml passes --check;
- the container image's gateway.toml passes --check; the Dockerfile is multi-stage on
  debian:trixie-slim with a numeric user and a HEALTHCHECK that runs the real probe, and its
  runtime packages exist in trixie where apt knows trixie (no container engine runs here);
- `cmake --install` into a DESTDIR puts every file where GNUInstallDirs says, the installed binary
  runs, the installed configuration passes --check and the installed unit verifies;
- the committed haproxy.cfg (addresses and ports substituted) in front of two real gateways sharing
  Redis: SIGTERM to one while a client keeps sending requests through HAProxy. HAProxy takes the
  draining gateway out on its /readyz 503 (check status L7STS, the gateway still running), and
  not one client request fails; the session stays the same throughout. The committed nginx.conf
  the same way: passive checks only, yet no GET fails (refused connections are retried);
- `sessiongate --health-check` (the image's HEALTHCHECK) exits 0 against a running gateway, on the
  main or the admin listener as configured, and 1 once it has stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import (FREE_ADMIN_LISTEN, ConnectionClosed, Gateway, HttpClient, gateway_bin, missing_tool, start_upstream,
                     wait_until)
from redis_util import HAProxy, RedisServer, _Process, have, require_tools
from session_util import SessionTestCase

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
TOOL_TIMEOUT_S = 60


def report(text: str) -> None:
    print(f"\n    [measured] {text}", file=sys.stderr, flush=True)


def run(argv, env=None, **kw) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=full_env, **kw)


def read(*parts) -> str:
    with open(os.path.join(*parts)) as f:
        return f.read()


def binary() -> str:
    path = gateway_bin()
    if not os.access(path, os.X_OK):
        if "SESSIONGATE_BIN" in os.environ:
            raise AssertionError(f"SESSIONGATE_BIN={path} is not an executable file")
        raise unittest.SkipTest(f"gateway binary {path} not built")
    return path


def temp_dir(test: unittest.TestCase, prefix: str) -> str:
    d = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, d, True)
    return d


def sub_exactly(test: unittest.TestCase, pattern: str, repl, text: str, count: int, flags=re.M) -> str:
    """re.subn that fails the test unless the committed file had exactly `count` matches."""
    out, n = re.subn(pattern, repl, text, flags=flags)
    test.assertEqual(n, count, f"committed file: expected {count} match(es) of {pattern!r}")
    return out


def check_config(test, text: str, directory: str, env=None) -> subprocess.CompletedProcess:
    path = os.path.join(directory, "gateway.toml")
    with open(path, "w") as f:
        f.write(text)
    return run([binary(), "--check", "--config", path], env=env)


# -- HAProxy from the committed file ------------------------------------------------------------

def render_haproxy(test, frontend_port: int, servers: list[tuple[int, int]], socket_path: str) -> str:
    """deploy/haproxy/haproxy.cfg for loopback: the frontend on `frontend_port`, server i on
    127.0.0.1:servers[i][0] checked on port servers[i][1] (two gateways on one host cannot share
    the admin port 9901 the committed file checks); foreground, logs to stdout, a private admin
    socket. Every other line is the committed one."""
    text = read(DEPLOY, "haproxy", "haproxy.cfg")
    text = sub_exactly(test, r"^\s*(chroot|user|group|daemon)\b.*\n", "", text, 4)
    text = sub_exactly(test, r"^(\s*)log /dev/log local0$", r"\1log stdout format raw local0 info", text, 1)
    text = sub_exactly(test, r"^(\s*)stats socket \S+ .*$", rf"\1stats socket {socket_path} mode 600 level admin",
                       text, 1)
    text = sub_exactly(test, r"^(\s*)bind :80$", rf"\1bind 127.0.0.1:{frontend_port}", text, 1)
    text = sub_exactly(test, r"^(\s*default-server check) port 9901\b", r"\1", text, 1)
    lines = iter(servers)

    def server(m):
        main, admin = next(lines)
        return f"{m.group(1)}server {m.group(2)} 127.0.0.1:{main} port {admin}"
    return sub_exactly(test, r"^(\s*)server (gw\d+) \S+$", server, text, len(servers))


class CommittedHAProxy(HAProxy):
    """HAProxy running deploy/haproxy/haproxy.cfg (see render_haproxy); the process handling,
    admin socket and server states of redis_util.HAProxy."""

    def __init__(self, test: unittest.TestCase, servers: list[tuple[int, int]]):
        _Process.__init__(self, test)
        self.backends = [main for main, _ in servers]
        self.socket_path = os.path.join(self.dir, "admin.sock")
        self.config_path = os.path.join(self.dir, "haproxy.cfg")

        def write_config():
            with open(self.config_path, "w") as f:
                f.write(render_haproxy(test, self.port, servers, self.socket_path))
        self._start(lambda: ["haproxy", "-db", "-f", self.config_path], write_config)

    def check_states(self) -> dict[str, tuple[str, str]]:
        """{server: (status, check_status)}, e.g. ("DOWN", "L7STS") after a 503 from /readyz."""
        lines = self.admin("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        i_px, i_sv = header.index("pxname"), header.index("svname")
        i_st, i_ck = header.index("status"), header.index("check_status")
        return {f[i_sv]: (f[i_st], f[i_ck]) for f in (line.split(",") for line in lines[1:])
                if len(f) > i_ck and f[i_px] == "gateways" and f[i_sv] not in ("FRONTEND", "BACKEND")}


def render_nginx(test, directory: str, listen_port: int, servers: list[int]) -> str:
    """deploy/nginx/nginx.conf for a run in `directory`: no `user` (the test runs as whoever it
    is), pid and logs there, listening on 127.0.0.1:listen_port, upstream servers on loopback.
    Every other line is the committed one."""
    text = read(DEPLOY, "nginx", "nginx.conf")
    text = sub_exactly(test, r"^user .*\n", "", text, 1)
    text = sub_exactly(test, r"^pid \S+;$", f"pid {directory}/nginx.pid;", text, 1)
    text = sub_exactly(test, r"^error_log \S+ (\w+);$", rf"error_log {directory}/error.log info;", text, 1)
    text = sub_exactly(test, r"access_log \S+;", f"access_log {directory}/access.log;", text, 1)
    text = sub_exactly(test, r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{listen_port};", text, 1)
    ports = iter(servers)
    return sub_exactly(test, r"^(\s*)server 10\.0\.0\.\d+:8080 ", lambda m: f"{m.group(1)}server 127.0.0.1:{next(ports)} ",
                       text, len(servers))


class CommittedNginx(_Process):
    """nginx in the foreground running deploy/nginx/nginx.conf (see render_nginx)."""

    name = "nginx"

    def __init__(self, test: unittest.TestCase, servers: list[int]):
        super().__init__(test)
        self.config_path = os.path.join(self.dir, "nginx.conf")

        def write_config():
            with open(self.config_path, "w") as f:
                f.write(render_nginx(test, self.dir, self.port, servers))
        self._start(lambda: ["nginx", "-c", self.config_path, "-p", self.dir + "/", "-e", f"{self.dir}/error.log",
                             "-g", "daemon off;"], write_config)

    def failure_details(self) -> str:
        return f"{self.output()[-2000:]} {self.error_log()[-2000:]}"

    def error_log(self) -> str:
        try:
            return read(self.dir, "error.log")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """nginx's workers outlive a SIGKILLed master: stop the master (SIGTERM, which stops its
        workers) and, failing that, SIGKILL the whole process group (its own session)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def workers(self) -> list[int]:
        """The pids left in nginx's process group (master and workers)."""
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.getpgid(int(pid)) == self.proc.pid:
                    out.append(int(pid))
            except ProcessLookupError:
                pass
        return out


# -- static checks ------------------------------------------------------------------------------

class LoadBalancerConfigs(unittest.TestCase):
    def test_haproxy_accepts_the_committed_configuration(self):
        require_tools("haproxy")
        r = run(["haproxy", "-c", "-f", os.path.join(DEPLOY, "haproxy", "haproxy.cfg")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("Configuration file is valid", r.stdout + r.stderr)
        self.assertNotIn("WARNING", r.stdout + r.stderr)

    def test_haproxy_routes_on_readiness_from_the_admin_listener(self):
        text = read(DEPLOY, "haproxy", "haproxy.cfg")
        self.assertRegex(text, r"(?m)^\s*option httpchk GET /readyz$")
        self.assertRegex(text, r"(?m)^\s*http-check expect status 200$")
        self.assertRegex(text, r"(?m)^\s*default-server check port 9901 inter 1s fall 2 rise 2$")
        self.assertRegex(text, r"(?m)^\s*option redispatch")
        self.assertRegex(text, r"(?m)^\s*http-request disable-l7-retry unless METH_GET")
        self.assertNotRegex(text, r"(?m)^\s*option httpchk GET /healthz")

    def test_nginx_accepts_the_committed_configuration(self):
        require_tools("nginx")
        d = temp_dir(self, "sg-it-nginx-")
        text = read(DEPLOY, "nginx", "nginx.conf")
        text = sub_exactly(self, r"^user .*\n", "", text, 1)
        text = sub_exactly(self, r"^pid \S+;$", f"pid {d}/nginx.pid;", text, 1)
        text = sub_exactly(self, r"^error_log \S+", f"error_log {d}/error.log", text, 1)
        text = sub_exactly(self, r"access_log \S+;", f"access_log {d}/access.log;", text, 1)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(text)
        r = run(["nginx", "-t", "-q", "-c", conf, "-p", d + "/", "-e", f"{d}/error.log"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + read(d, "error.log"))
        # Passive checks only, said plainly; never a retry on 503 (fail_closed is the same everywhere).
        self.assertIn("only PASSIVE checks", text)
        self.assertRegex(text, r"proxy_next_upstream error timeout http_502 http_504;")


class SystemdUnit(unittest.TestCase):
    def unit_for(self, path_of_binary: str, unit_text: str | None = None) -> str:
        d = temp_dir(self, "sg-it-unit-")
        text = unit_text if unit_text is not None else read(DEPLOY, "systemd", "sessiongate.service")
        text = sub_exactly(self, r"/usr/bin/sessiongate\b", path_of_binary, text, 3, flags=0)
        path = os.path.join(d, "sessiongate.service")
        with open(path, "w") as f:
            f.write(text)
        return path

    def verify(self, path: str) -> None:
        require_tools("systemd-analyze")
        r = run(["systemd-analyze", "verify", path])
        self.assertEqual((r.returncode, r.stderr.strip()), (0, ""), f"systemd-analyze verify {path}:\n{r.stderr}")

    def test_systemd_analyze_verify_accepts_the_unit_without_warnings(self):
        self.verify(self.unit_for(binary()))

    def test_verify_would_catch_a_typo(self):
        # The check above is not vacuous: an unknown key is reported.
        require_tools("systemd-analyze")
        text = read(DEPLOY, "systemd", "sessiongate.service").replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
        r = run(["systemd-analyze", "verify", self.unit_for(binary(), text)])
        self.assertIn("Unknown key", r.stderr)

    def test_unit_is_notify_with_checked_reload_and_hardening(self):
        text = read(DEPLOY, "systemd", "sessiongate.service")
        keys = {}
        for line in text.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
        self.assertEqual(keys["Type"], ["notify"])
        self.assertEqual(keys["NotifyAccess"], ["main"])
        self.assertEqual(keys["ExecReload"], ["/usr/bin/sessiongate --check --config /etc/sessiongate/gateway.toml",
                                              "/bin/kill -HUP $MAINPID"])
        self.assertIn("WatchdogSec", keys)
        for k, v in {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                     "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE", "StateDirectory": "sessiongate",
                     "SystemCallFilter": "@system-service", "RestrictNamespaces": "yes",
                     "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes"}.items():
            self.assertIn(v, keys.get(k, []), k)


class Kubernetes(unittest.TestCase):
    DIR = os.path.join(DEPLOY, "kubernetes")

    def docs(self) -> list[dict]:
        try:
            import yaml  # PyYAML (python3-yaml); the syntax check below needs nothing else
        except ImportError:
            missing_tool("python3-yaml not installed")
        out = []
        for name in sorted(os.listdir(self.DIR)):
            if name.endswith(".yaml"):
                with open(os.path.join(self.DIR, name)) as f:
                    out += [d for d in yaml.safe_load_all(f) if d and d.get("kind") != "Kustomization"]
        return out

    def test_kustomize_builds_the_manifests_offline(self):
        if not have("kubectl"):
            missing_tool("kubectl not installed")
        d = temp_dir(self, "sg-it-kube-")
        # No cluster and no kubeconfig: `kustomize` never talks to a server.
        r = run(["kubectl", "kustomize", self.DIR], env={"KUBECONFIG": os.path.join(d, "none")})
        self.assertEqual(r.returncode, 0, r.stderr)
        kinds = re.findall(r"(?m)^kind: (\w+)$", r.stdout)
        self.assertEqual(sorted(kinds), ["ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget",
                                         "Secret", "Service", "Service"])

    def test_manifests_parse_and_the_gateway_is_hardened_and_drains(self):
        docs = self.docs()
        by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        dep = by[("Deployment", "sessiongate")]
        self.assertEqual(dep["spec"]["replicas"], 2)
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "admin"})
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "admin"})
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertGreater(pod["securityContext"]["runAsUser"], 0)
        sc = c["securityContext"]
        self.assertEqual((sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"], sc["capabilities"]["drop"]),
                         (True, False, ["ALL"]))
        self.assertIn("memory", c["resources"]["limits"])
        self.assertIn("cpu", c["resources"]["requests"])
        # The grace period covers the preStop pause and the whole drain.
        config = by[("ConfigMap", "sessiongate-config")]["data"]["gateway.toml"]
        drain = int(re.search(r'drain_timeout = "(\d+)s"', config).group(1))
        pause = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
        self.assertGreater(pod["terminationGracePeriodSeconds"], drain + pause)
        # Secrets are files from a Secret, mounted read-only.
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(vols["secrets"]["secret"]["secretName"], "sessiongate-secrets")
        self.assertTrue(mounts["secrets"]["readOnly"])
        self.assertIn(mounts["secrets"]["mountPath"], re.search(r'password_file = "([^"]+)"', config).group(1))
        self.assertIn("redis.password", by[("Secret", "sessiongate-secrets")]["stringData"])
        self.assertEqual(by[("Service", "sessiongate")]["spec"]["ports"][0]["targetPort"], "http")

    def test_the_configmap_configuration_passes_check(self):
        docs = self.docs()
        config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["gateway.toml"]
        d = temp_dir(self, "sg-it-kube-")
        password = os.path.join(d, "redis.password")
        with open(password, "w") as f:
            f.write("example\n")
        os.chmod(password, 0o600)
        config = sub_exactly(self, r'password_file = "[^"]+"', f'password_file = "{password}"', config, 1)
        r = check_config(self, config, d, env={"SG_WORKERS": "2"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class Container(unittest.TestCase):
    def test_the_image_configuration_passes_check(self):
        d = temp_dir(self, "sg-it-image-")
        text = read(DEPLOY, "container", "gateway.toml")
        text = sub_exactly(self, r"/var/lib/sessiongate/", d + "/", text, 1)
        dockerfile = read(DEPLOY, "container", "Dockerfile")
        env = dict(re.findall(r"(SG_\w+)=(\S+)", re.search(r"(?m)^ENV (.*)$", dockerfile).group(1)))
        self.assertEqual(set(env), {"SG_WORKERS", "SG_UPSTREAM"})
        r = check_config(self, text, d, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_health_check_probe_follows_the_configuration_and_fails_when_down(self):
        up = start_upstream(self)
        for overrides in ({}, {"admin": {"listen": FREE_ADMIN_LISTEN}}):
            gw = Gateway(self, up.port, overrides)
            probe = [binary(), "--health-check", "--config", gw.config_path]
            r = run(probe)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(gw.stop(), 0)
            r = run(probe)
            self.assertEqual(r.returncode, 1)
            self.assertIn("unhealthy", r.stderr)
            # Health answers come from the main listener or the admin one, never the application.
            self.assertFalse([p for p in up.paths() if "health" in p])

    def test_dockerfile_is_multi_stage_non_root_with_a_real_health_check(self):
        text = read(DEPLOY, "container", "Dockerfile")
        self.assertEqual(re.findall(r"(?m)^FROM (\S+)", text), ["debian:trixie-slim", "debian:trixie-slim"])
        self.assertRegex(text, r"(?m)^USER \d+:\d+$")
        self.assertRegex(text, r"(?m)^EXPOSE 8080 9901$")
        self.assertRegex(text, r'CMD \["/usr/bin/sessiongate", "--health-check", "--config", '
                               r'"/etc/sessiongate/gateway.toml"\]')
        runtime = text.split("\nFROM ")[2]
        self.assertNotRegex(runtime, r"-dev\b|build-essential|cmake")

    def test_runtime_and_build_packages_exist_in_trixie(self):
        if not have("apt-cache"):
            missing_tool("no apt-cache")
        if "trixie" not in run(["apt-cache", "policy"]).stdout:
            missing_tool("apt knows no trixie source on this machine (deploy/install-deps.sh adds it)")
        text = read(DEPLOY, "container", "Dockerfile")
        packages = set()
        for block in re.findall(r"apt-get install -y --no-install-recommends (.*?)(?:\\\n)? *&&", text, re.S):
            packages |= set(re.findall(r"[a-z0-9][a-z0-9.+-]+", block.replace("\\\n", " ")))
        self.assertIn("libllhttp9.2", packages)
        r = run(["apt-cache", "madison", *sorted(packages)])  # one call: apt-cache is slow to start
        in_trixie = {line.split("|")[0].strip() for line in r.stdout.splitlines() if "trixie" in line}
        self.assertEqual(sorted(packages - in_trixie), [], "not trixie packages")


class Install(unittest.TestCase):
    def build_dir(self) -> str:
        d = os.path.dirname(binary())
        if not os.path.exists(os.path.join(d, "cmake_install.cmake")):
            self.skipTest(f"{d} is not a CMake build directory")
        return d

    def install(self, prefix: str, destdir: str | None = None) -> tuple[str, str]:
        require_tools("cmake")
        destdir = destdir or temp_dir(self, "sg-it-install-")
        r = run(["cmake", "--install", self.build_dir(), "--prefix", prefix], env={"DESTDIR": destdir})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return destdir, r.stdout

    def test_install_to_usr_puts_files_where_gnuinstalldirs_says(self):
        root, _ = self.install("/usr")
        expected = ["usr/bin/sessiongate", "etc/sessiongate/gateway.toml",
                    "usr/lib/systemd/system/sessiongate.service", "usr/share/doc/sessiongate/README.md",
                    "usr/share/doc/sessiongate/ARCHITECTURE.md",
                    "usr/share/doc/sessiongate/examples/redis.toml"]
        for p in expected:
            self.assertTrue(os.path.isfile(os.path.join(root, p)), p)
        installed = os.path.join(root, "usr/bin/sessiongate")
        self.assertTrue(os.access(installed, os.X_OK))
        r = run([installed, "--version"])
        self.assertEqual((r.returncode, r.stdout), (0, run([binary(), "--version"]).stdout))
        self.assertRegex(r.stdout, r"^sessiongate \d+\.\d+\.\d+\n$")

        # The installed configuration keeps its snapshot in the unit's StateDirectory. That
        # directory is systemd's to create, so --check is run on a copy pointing elsewhere, and the
        # original may fail only for that directory.
        config = read(root, "etc/sessiongate/gateway.toml")
        self.assertIn('\nsnapshot_path = "/var/lib/sessiongate/sessions.snapshot"\n', config)
        d = temp_dir(self, "sg-it-state-")
        r = check_config(self, config.replace("/var/lib/sessiongate/", d + "/"), d)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run([installed, "--check", "--config", os.path.join(root, "etc/sessiongate/gateway.toml")])
        if not os.path.isdir("/var/lib/sessiongate"):
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stderr.strip().splitlines()[-1][-len('"/var/lib/sessiongate" does not exist'):],
                             '"/var/lib/sessiongate" does not exist', r.stderr)
        else:
            self.assertEqual(r.returncode, 0, r.stderr)

        # The installed unit runs the installed binary on the installed configuration.
        unit = read(root, "usr/lib/systemd/system/sessiongate.service")
        self.assertIn("\nExecStart=/usr/bin/sessiongate --config /etc/sessiongate/gateway.toml\n", unit)
        self.assertIn("Documentation=file:///usr/share/doc/sessiongate/README.md", unit)
        if have("systemd-analyze"):
            staged = SystemdUnit.unit_for(self, installed, unit)
            r = run(["systemd-analyze", "verify", staged])
            self.assertEqual((r.returncode, r.stderr.strip()), (0, ""), r.stderr)

    def test_other_prefixes_get_their_own_paths_and_an_edited_configuration_is_kept(self):
        root, _ = self.install("/usr/local")
        unit = read(root, "usr/local/lib/systemd/system/sessiongate.service")
        self.assertIn("\nExecStart=/usr/local/bin/sessiongate --config /usr/local/etc/sessiongate/gateway.toml\n",
                      unit)
        self.assertTrue(os.path.isfile(os.path.join(root, "usr/local/etc/sessiongate/gateway.toml")))
        root, _ = self.install("/opt/sessiongate")
        self.assertTrue(os.path.isfile(os.path.join(root, "etc/opt/sessiongate/sessiongate/gateway.toml")))

        root, _ = self.install("/usr")
        path = os.path.join(root, "etc/sessiongate/gateway.toml")
        with open(path, "a") as f:
            f.write("# edited by the operator\n")
        _, out = self.install("/usr", root)
        self.assertTrue(read(path).endswith("# edited by the operator\n"), "the operator's file was overwritten")
        self.assertTrue(os.path.isfile(path + ".new"))
        self.assertIn("Keeping", out)


# -- HAProxy in front of two gateways: a drain loses nothing ------------------------------------

class Load:
    """Requests through HAProxy with one session cookie until stopped: one thread on a keep-alive
    connection, one with a fresh connection per request. Every failure is recorded."""

    def __init__(self, port: int, token: str, handle: str):
        self.port, self.token, self.handle = port, token, handle
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.ok = 0
        self.threads = [threading.Thread(target=self._run, args=(keep,), daemon=True) for keep in (True, False)]

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def count(self) -> int:
        with self.lock:
            return self.ok

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)

    def _check(self, resp) -> str | None:
        if resp.status != 200:
            return f"status {resp.status}"
        handles = [v for k, v in resp.json()["headers"] if k.lower() == "x-session-id"]
        if handles != [self.handle]:
            return f"upstream saw X-Session-Id {handles}, expected [{self.handle}]"
        return None

    def _run(self, keep_alive: bool) -> None:
        client = None
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                if client is None:
                    client = HttpClient(self.port, timeout=10)
                headers = [("Cookie", f"session_id={self.token}")]
                if not keep_alive:
                    headers.append(("Connection", "close"))
                resp = client.roundtrip("GET", f"/echo/load-{'k' if keep_alive else 'f'}{i}", headers=headers)
                problem = self._check(resp)
                if not keep_alive or "close" in resp.tokens("Connection"):
                    client.close()
                    client = None
            except (OSError, ConnectionClosed, AssertionError, ValueError) as e:
                problem = f"{type(e).__name__}: {e}"
                if client is not None:
                    client.close()
                client = None
            with self.lock:
                if problem:
                    self.errors.append(f"{'keep-alive' if keep_alive else 'fresh'} #{i}: {problem}")
                else:
                    self.ok += 1
            self.stop.wait(0.002)  # pacing (~400 requests/s per thread), to leave the shared CPUs some air
        if client is not None:
            client.close()


class ReadinessAwareDrain(SessionTestCase):
    def two_gateways(self, drain_timeout: str = "20s"):
        """Two gateways (1 worker each, admin listener) sharing a fresh Redis."""
        require_tools("redis-server")
        redis = RedisServer(self)
        gws = []
        for _ in range(2):
            # A generous Redis timeout: a slow machine must not turn into fail_closed 503s.
            gw = Gateway(self, self.up.port, {
                "server": {"workers": 1, "drain_timeout": drain_timeout}, "upstream": {"response_timeout": "30s"},
                "session": {"store": "redis"},
                "store.redis": {"address": redis.address, "key_prefix": "sgit-deploy:", "timeout": "1s"},
                "admin": {"listen": FREE_ADMIN_LISTEN}})
            gws.append(gw)
        return gws

    def start_load(self, port: int) -> tuple[Load, str]:
        """A session created through `port`, then Load with it; returns (load, token)."""
        c = HttpClient(port, self)
        first = c.roundtrip("GET", "/echo/first")
        self.assertEqual(first.status, 200, first)
        token = self.issued_token(first)
        load = Load(port, token, self.handle_of(self.seen(first))).start()
        self.addCleanup(load.finish)
        wait_until(lambda: load.count() >= 40, 15, message=lambda: f"load running: {load.count()} ok, {load.errors}")
        return load, token

    def test_sigterm_behind_the_committed_haproxy_config_fails_no_request(self):
        require_tools("haproxy")
        # drain_timeout: A keeps draining while an 8 s request is in flight.
        a, b = self.two_gateways()
        hap = CommittedHAProxy(self, [(a.port, a.admin_port), (b.port, b.admin_port)])
        hap.wait_all_up(timeout=10)
        load, token = self.start_load(hap.port)

        # Keep A draining: a slow request straight to it (not through HAProxy).
        slow = HttpClient(a.port, self, timeout=30)
        slow.request("GET", "/delay?ms=8000", headers=[("Cookie", f"session_id={token}")])
        wait_until(lambda: any(p.startswith("/delay") for p in self.up.paths()), 5,
                   message="the slow request reached the application")

        t0 = time.monotonic()
        before = load.count()
        a.signal(signal.SIGTERM)

        def a_out():
            state = hap.check_states().get("gw1")
            return state if state and state[0].startswith("DOWN") else None
        state = wait_until(a_out, 10, interval=0.02, message=lambda: f"HAProxy to take A out: {hap.check_states()}")
        took = time.monotonic() - t0
        self.assertTrue(a.alive(), "A was taken out while still draining, not because it had exited")
        self.assertEqual(state, ("DOWN", "L7STS"), "taken out on an HTTP status (the 503 from /readyz)")
        during = load.count() - before

        # The slow request completes (drain), A exits 0, and the load goes on through B.
        resp = slow.read_response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(a.wait_exit(15), 0)
        after_exit = load.count()
        wait_until(lambda: load.count() >= after_exit + 40, 15, message="load continuing through B")
        load.finish()
        self.assertEqual(load.errors, [], f"{len(load.errors)} failed request(s) of {load.count()}")
        self.assertEqual(a.stop(), 0)
        report(f"HAProxy (committed config, inter 1s fall 2) took the draining gateway out "
               f"{took * 1000:.0f} ms after SIGTERM (check {state[1]}), {during} requests meanwhile; "
               f"{load.count()} requests through HAProxy, 0 failed")


    def test_sigterm_behind_the_committed_nginx_config_fails_no_request(self):
        # nginx has passive checks only: it cannot see /readyz, but it retries a refused or
        # closed connection on the other gateway, so a stopping gateway costs no GET.
        require_tools("nginx")
        a, b = self.two_gateways(drain_timeout="5s")
        nginx = CommittedNginx(self, [a.port, b.port])
        load, _ = self.start_load(nginx.port)
        before = load.count()
        a.signal(signal.SIGTERM)
        self.assertEqual(a.wait_exit(15), 0)
        after_exit = load.count()
        # Long enough for nginx to try A again (and fall back to B) after it was refused.
        wait_until(lambda: "Connection refused" in nginx.error_log() and load.count() >= after_exit + 200, 20,
                   message=lambda: f"nginx to meet the refused gateway: {load.count() - after_exit} requests since")
        load.finish()
        self.assertEqual(load.errors, [], f"{len(load.errors)} failed request(s) of {load.count()}")
        self.assertEqual(a.stop(), 0)
        refused = nginx.error_log().count("Connection refused")
        nginx.kill()
        wait_until(lambda: not nginx.workers(), 5, message=lambda: f"nginx processes gone: {nginx.workers()}")
        report(f"nginx (committed config, passive checks): {load.count()} requests, 0 failed; "
               f"{load.count() - before} after SIGTERM, {refused} refused connection(s) retried on the other gateway")


if __name__ == "__main__":
    unittest.main()
