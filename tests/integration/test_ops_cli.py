"""Command line for operators: --check reports every error as FILE:LINE:COL and exits 1; the shipped
gateway.toml passes; --print-config output (defaults filled in) is itself a valid file. Every key
the binary knows is in the shipped gateway.toml and in README.md's configuration reference, with the
same default."""

import os
import re
import shutil
import tempfile
import unittest

from ops_util import run_cli

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SHIPPED = os.path.join(REPO, "gateway.toml")
README = os.path.join(REPO, "README.md")


def toml_keys(text: str, commented_tables: bool = False) -> dict:
    """{"section.key": "value as written"} of a flat TOML file such as gateway.toml; with
    commented_tables, keys of a commented-out [[table]] example count too (value "required",
    or the default its comment names: "# # ... Default: []." gives "[]")."""
    out, section, example, comment = {}, "", False, ""
    for line in text.splitlines():
        m = re.match(r"^(#\s*)?\[\[?([a-z0-9_.]+)\]\]?\s*$", line)
        if m and (m.group(1) is None or commented_tables):
            section, example, comment = m.group(2), m.group(1) is not None, ""
            continue
        m = re.match(r"^(#\s*# |# )?([a-z0-9_]+) = (.+)$", line) if example else re.match(r"^([a-z0-9_]+) = (.+)$", line)
        if m and section:
            default = re.search(r"Default: (.+?)\.?$", comment)
            key, value = ((m.group(2), default.group(1) if default else "required") if example
                          else (m.group(1), m.group(2)))
            out[f"{section}.{key}"] = value.strip()
        comment = comment + line if line.startswith("# #") else ""
    return out


def readme_reference() -> dict:
    """{"section.key": "default"} from the tables of README.md's "Configuration reference"."""
    with open(README) as f:
        text = f.read()
    start = text.index("### Configuration reference")
    end = text.index("\n### ", start + 1)
    out, section = {}, ""
    for line in text[start:end].splitlines():
        m = re.match(r"^`\[\[?([a-z0-9_.]+)\]\]?`", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^\| `([a-z0-9_]+)` \| (`(.*?)`|required) \|", line)
        if m:
            out[f"{section}.{m.group(1)}"] = m.group(3) if m.group(3) is not None else "required"
    return out


class OperatorCli(unittest.TestCase):
    def write(self, name: str, text: str) -> str:
        d = tempfile.mkdtemp(prefix="sg-opscli-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_reports_every_error_with_its_position(self):
        path = self.write("three-errors.toml", "\n".join([
            "[server]",                                   # 1
            'listen = ["127.0.0.1:18080"]',               # 2
            "workerz = 2",                                # 3: unknown key
            "[upstream]",                                 # 4
            'response_timeout = "30 seconds"',            # 5: bad duration
            "[limits]",                                   # 6
            "max_headers = true",                         # 7: wrong type
            "",
        ]))
        r = run_cli("--check", "--config", path)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, out)
        located = re.findall(rf"(?m)^{re.escape(path)}:(\d+):(\d+): (.+)$", out)
        self.assertEqual(sorted(int(line) for line, _, _ in located), [3, 5, 7],
                         f"expected one FILE:LINE:COL: line per error (lines 3, 5, 7):\n{out}")
        by_line = {int(line): (int(col), msg) for line, col, msg in located}
        self.assertEqual(by_line[3][0], 1, out)
        self.assertIn("workerz", by_line[3][1])
        self.assertIn("workers", by_line[3][1], "no 'did you mean' for a close key")
        self.assertIn("response_timeout", by_line[5][1])
        self.assertIn("30 seconds", by_line[5][1])
        self.assertEqual(by_line[5][0], len("response_timeout = ") + 1, out)
        self.assertIn("max_headers", by_line[7][1])
        self.assertEqual(by_line[7][0], len("max_headers = ") + 1, out)
        self.assertNotIn("configuration ok", out)

    def test_check_accepts_the_shipped_file(self):
        self.assertTrue(os.path.exists(SHIPPED), f"the repository's gateway.toml is missing: {SHIPPED}")
        r = run_cli("--check", "--config", SHIPPED)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotRegex(r.stdout + r.stderr, r":\d+:\d+: ", "errors or warnings on the shipped file")

    def test_print_config_output_loads_again(self):
        for source in (SHIPPED, self.write("minimal.toml", '[server]\nlisten = ["127.0.0.1:18081"]\n')):
            self.assertTrue(os.path.exists(source), source)
            with self.subTest(source=os.path.basename(source)):
                r = run_cli("--print-config", "--config", source)
                self.assertEqual(r.returncode, 0, r.stderr)
                printed = r.stdout
                self.assertRegex(printed, r"(?m)^\[server\]$")
                self.assertRegex(printed, r'(?m)^idle_timeout = "1h"$', "defaults are not filled in")
                path = self.write("printed.toml", printed)
                check = run_cli("--check", "--config", path)
                self.assertEqual(check.returncode, 0, f"--print-config output fails --check:\n"
                                                      f"{check.stdout}{check.stderr}\n---\n{printed}")
                again = run_cli("--print-config", "--config", path)
                self.assertEqual(again.returncode, 0, again.stderr)
                self.assertEqual(again.stdout, printed, "--print-config is not a fixed point")
        r = run_cli("--print-config", "--config", self.write("m.toml", '[server]\nlisten = ["127.0.0.1:18082"]\n'))
        self.assertIn('listen = ["127.0.0.1:18082"]', r.stdout)


class DocumentedKeys(unittest.TestCase):
    """A key the binary accepts but the documentation omits is a key users cannot find."""

    def test_every_key_is_in_gateway_toml_and_the_readme_with_the_same_default(self):
        with open(SHIPPED) as f:
            shipped = toml_keys(f.read(), commented_tables=True)
        r = run_cli("--print-config", "--config", SHIPPED)
        self.assertEqual(r.returncode, 0, r.stderr)
        effective = toml_keys(r.stdout)
        self.assertGreater(len(effective), 50, f"--print-config output not understood:\n{r.stdout}")
        readme = readme_reference()
        self.assertEqual(sorted(set(effective) - set(shipped)), [], "keys missing from gateway.toml")
        self.assertEqual(sorted(set(shipped) - set(readme)), [], "keys missing from README.md's reference")
        self.assertEqual(sorted(set(readme) - set(shipped)), [], "README.md documents keys gateway.toml lacks")
        wrong = [(k, shipped[k], readme[k]) for k in sorted(shipped) if shipped[k] != readme[k]]
        self.assertEqual(wrong, [], "defaults differ (key, gateway.toml, README.md)")


if __name__ == "__main__":
    unittest.main()
