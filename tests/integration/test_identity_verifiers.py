"""The signed identity header's verifiers (deploy/examples/verify_signature.py and .php, the
README's "Signed identity header") against the known-answer vector that the C++ signer is held to
(tests/unit/policy/identity_signature_vector.txt, computed independently with Python's hmac module).

A good signature passes; any changed, added or removed X-Session-* header, another method or
target, an unknown key, and a `t` outside the allowed skew fail. The PHP verifier runs when
php-cli is installed (deploy/install-deps.sh test installs it; under ctest a missing php fails).

The same checks on real gateway output (the headers a recording upstream receives) are in
test_policy.SignedIdentity.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import unittest

from harness import missing_tool

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VECTOR = os.path.join(ROOT, "tests", "unit", "policy", "identity_signature_vector.txt")
EXAMPLES = os.path.join(ROOT, "deploy", "examples")


def read_vector():
    v = {"headers": []}
    with open(VECTOR) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, value = line.split("=", 1)
            if name == "header":
                v["headers"].append(tuple(value.split(": ", 1)))
            else:
                v[name] = value
    v["key"] = bytes.fromhex(v["key_hex"])
    v["t"] = int(v["t"])
    return v


def load_python_verifier():
    spec = importlib.util.spec_from_file_location("verify_signature",
                                                  os.path.join(EXAMPLES, "verify_signature.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.verify


def cases(v):
    """(name, method, target, headers, keys, now, expected) for every check."""
    base = dict(v["headers"])
    base["X-Session-Signature"] = v["signature"]
    key, t = v["key"], v["t"]
    other_key = bytes(range(100, 140))

    def changed(**edits):
        h = dict(base)
        for name, value in edits.items():
            name = name.replace("_", "-")
            if value is None:
                h.pop(name, None)
            else:
                h[name] = value
        return h

    return [
        ("good", v["method"], v["target"], base, [key], t, True),
        ("good, key among others", v["method"], v["target"], base, [other_key, key], t + 59, True),
        ("good, header names in another case", v["method"], v["target"],
         {k.upper(): val for k, val in base.items()}, [key], t, True),
        ("non-identity header changed", v["method"], v["target"],
         changed(X_Request_Id="other"), [key], t, True),
        ("attribute changed", v["method"], v["target"], changed(X_Session_User="mallory"), [key], t, False),
        ("attribute added", v["method"], v["target"], changed(X_Session_Admin="1"), [key], t, False),
        ("attribute removed", v["method"], v["target"], changed(X_Session_Role=None), [key], t, False),
        ("handle changed", v["method"], v["target"], changed(X_Session_Id="0" * 32), [key], t, False),
        ("path changed", v["method"], "/cart?add=2&next=%2Faccount", base, [key], t, False),
        ("method changed", "GET", v["target"], base, [key], t, False),
        ("t older than the skew", v["method"], v["target"], base, [key], t + 61, False),
        ("t in the future beyond the skew", v["method"], v["target"], base, [key], t - 61, False),
        ("unknown key", v["method"], v["target"], base, [other_key], t, False),
        ("t edited", v["method"], v["target"],
         changed(X_Session_Signature=v["signature"].replace(f"t={t}", f"t={t + 1}")), [key], t, False),
        ("no signature", v["method"], v["target"], changed(X_Session_Signature=None), [key], t, False),
        ("garbage signature", v["method"], v["target"], changed(X_Session_Signature="v1; kid"), [key], t, False),
    ]


class PythonVerifier(unittest.TestCase):
    def test_every_case(self):
        verify, v = load_python_verifier(), read_vector()
        for name, method, target, headers, keys, now, expected in cases(v):
            with self.subTest(name):
                self.assertIs(verify(method, target, headers, keys, now=now), expected)

    def test_ten_lines_or_so(self):
        with open(os.path.join(EXAMPLES, "verify_signature.py")) as f:
            body = [l for l in f.read().split("def verify", 1)[1].splitlines() if l.strip()]
        self.assertLessEqual(len(body), 12)


class PhpVerifier(unittest.TestCase):
    def test_every_case(self):
        php = shutil.which("php")
        if php is None:
            missing_tool("php (php-cli) is not installed")
        v = read_vector()
        script = os.path.join(EXAMPLES, "verify_signature.php")
        driver = ("require $argv[1]; $cases = json_decode(stream_get_contents(STDIN), true);"
                  "foreach ($cases as $c) echo sg_verify($c[0], $c[1], $c[2], array_map('hex2bin', $c[3]),"
                  " 60, 'x-session-', $c[4]) ? '1' : '0';")
        table = cases(v)
        payload = json.dumps([[m, t, h, [k.hex() for k in keys], now] for _, m, t, h, keys, now, _ in table])
        r = subprocess.run([php, "-r", driver, script], input=payload, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout), len(table), r.stdout + r.stderr)
        for (name, *_, expected), got in zip(table, r.stdout):
            with self.subTest(name):
                self.assertEqual(got == "1", expected)


if __name__ == "__main__":
    unittest.main()
