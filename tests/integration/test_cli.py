"""The command line: --version, --check (valid file, unknown key with FILE:LINE:COL), SIGHUP reload
(a valid file applies to new requests; an invalid one is logged and the running config stays)."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import Gateway, HttpClient, base_config, gateway_bin, start_upstream, to_toml, wait_until


def run(*args, timeout=10):
    binary = gateway_bin()
    if not os.access(binary, os.X_OK):
        if "SESSIONGATE_BIN" in os.environ:
            raise AssertionError(f"SESSIONGATE_BIN={binary} is not an executable file")
        raise unittest.SkipTest(f"gateway binary {binary} not built")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)


class CommandLine(unittest.TestCase):
    def write(self, text: str) -> str:
        d = tempfile.mkdtemp(prefix="sg-cli-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "gateway.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_a_port_in_use_fails_the_start_cleanly(self):
        # Exit 1 with the address named, for the first or a later listen address and for the admin
        # listener; nothing leaked on the way out (LeakSanitizer reports it in the ASan pass).
        import socket
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cases = {
            "first listen address": ({"listen": [f"127.0.0.1:{port}"], "workers": 2}, None,
                                     f"server.listen: cannot bind 127.0.0.1:{port}"),
            "second listen address": ({"listen": ["127.0.0.1:0", f"127.0.0.1:{port}"], "workers": 2}, None,
                                      f"server.listen: cannot bind 127.0.0.1:{port}"),
            "admin listener": ({"listen": ["127.0.0.1:0"], "workers": 2}, {"listen": f"127.0.0.1:{port}"},
                               f"admin.listen: cannot listen on 127.0.0.1:{port}"),
        }
        for name, (server, admin, message) in cases.items():
            with self.subTest(name):
                c = base_config(0, 1)
                c["server"].update(server)
                if admin:
                    c["admin"] = admin
                r = run("--config", self.write(to_toml(c)), timeout=30)
                self.assertEqual(r.returncode, 1, r.stderr[-2000:])
                self.assertIn(message, r.stderr)
                self.assertNotIn("LeakSanitizer", r.stderr)

    def test_version(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"\d+\.\d+\.\d+")

    def test_check_accepts_a_valid_file(self):
        path = self.write(to_toml(base_config(18080, 19000)))
        r = run("--check", "--config", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_check_rejects_an_unknown_key_with_its_position(self):
        path = self.write('[server]\nlisten = ["127.0.0.1:18080"]\nworkerz = 2\n')
        r = run("--check", "--config", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        self.assertRegex(out, re.escape(path) + r":3:\d+: ", out)
        self.assertIn("workerz", out)

    def test_check_rejects_a_bad_value(self):
        path = self.write('[limits]\nheader_timeout = "ten seconds"\n')
        r = run("--check", "--config", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr, re.escape(path) + r":2:\d+: ")

    def test_check_on_the_shipped_gateway_toml(self):
        shipped = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gateway.toml")
        self.assertTrue(os.path.exists(shipped), f"the repository's gateway.toml is missing: {shipped}")
        r = run("--check", "--config", shipped)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_check_warns_about_an_admin_listener_on_a_public_address(self):
        path = self.write('[admin]\nlisten = "0.0.0.0:19901"\n')
        r = run("--check", "--config", path)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)  # a warning: the file is still used
        self.assertRegex(out, re.escape(path) + r":2:10: .*admin.listen: \"0.0.0.0:19901\" is not a loopback "
                                                r"or private address", out)
        r = run("--check", "--config", self.write('[admin]\nlisten = "127.0.0.1:19901"\n'))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("admin.listen", r.stdout + r.stderr)

    def test_check_rejects_a_logout_path_outside_cookie_path(self):
        path = self.write('[session]\ncookie_path = "/app"\nlogout_path = "/logout"\n')
        r = run("--check", "--config", path)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        self.assertRegex(out, re.escape(path) + r":3:15: .*session.logout_path: \"/logout\" is outside "
                                                r"session.cookie_path \"/app\"", out)

    def test_a_logout_path_outside_cookie_path_fails_the_start(self):
        c = base_config(0, 1)
        c["session"] = {"cookie_path": "/app", "logout_path": "/logout"}
        r = run("--config", self.write(to_toml(c)), timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr[-2000:])
        self.assertIn("is outside session.cookie_path", r.stderr)

    def test_start_with_an_invalid_file_fails_fast(self):
        path = self.write("[server]\nlisten = [\n")
        r = run("--config", path)
        self.assertNotEqual(r.returncode, 0)

    def test_sighup_applies_a_valid_file_to_new_requests(self):
        first, second = start_upstream(self), start_upstream(self)
        gw = Gateway(self, first.port)
        c = HttpClient(gw.port, self)
        self.assertEqual(c.roundtrip("GET", "/echo?one").status, 200)
        self.assertEqual(first.paths(), ["/echo"])
        gw.upstream_port = second.port
        with open(gw.config_path, "w") as f:
            f.write(to_toml(gw.config()))
        gw.signal(signal.SIGHUP)

        def reached_second():
            d = HttpClient(gw.port)
            try:
                d.roundtrip("GET", "/echo?probe")
            finally:
                d.close()
            return second.requests
        wait_until(reached_second, 5.0, interval=0.05, message="requests reaching the new upstream")
        self.assertTrue(gw.alive())

    def test_sighup_with_an_invalid_file_keeps_the_running_config(self):
        up = start_upstream(self)
        gw = Gateway(self, up.port)
        with open(gw.config_path, "w") as f:
            f.write("[server]\nlisten = [\n")
        gw.signal(signal.SIGHUP)
        wait_until(lambda: re.search(r"(fail|error|refus|invalid)", gw.logs()[1], re.I), 5.0,
                   message="a log line about the failed reload")
        self.assertTrue(gw.alive(), "an invalid reload killed the gateway")
        c = HttpClient(gw.port, self)
        self.assertEqual(c.roundtrip("GET", "/echo").status, 200)
        self.assertEqual(up.paths(), ["/echo"])


if __name__ == "__main__":
    unittest.main()
