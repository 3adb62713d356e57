"""The `airlock` CLI against real daemons: exec output and exit codes, code
from -c / a file / stdin, --stdin, --json events, addresses from flags and
from the environment, keys, and the documented error exit codes."""
import base64
import hashlib
import json
import os
import tempfile
import unittest

from airlock_fixture import DaemonTestCase, my_spiffe_id


def json_lines(stdout):
    return [json.loads(line) for line in stdout.decode().splitlines()]


class CliExec(DaemonTestCase):

    def test_python_prints_42(self):
        r = self.d.cli("exec", "--runtime", "python3", "-c", "import os; print(6*7)")
        self.assertEqual(r.returncode, 0, r.stderr.decode() + self.d.logs())
        self.assertEqual(r.stdout, b"42\n")

    def test_default_runtime_is_python3(self):
        r = self.d.cli("exec", "-c", "import sys; print(sys.version_info[0])")
        self.assertEqual((r.returncode, r.stdout), (0, b"3\n"), r.stderr.decode())

    def test_sh_exit_code_passes_through(self):
        r = self.d.cli("exec", "--runtime", "sh", "-c", "echo hi; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr.decode())
        self.assertEqual(r.stdout, b"hi\n")

    def test_stdout_and_stderr_are_kept_apart(self):
        r = self.d.cli("exec", "--runtime", "sh", "-c", "echo out; echo err >&2")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout, b"out\n")
        self.assertIn(b"err\n", r.stderr)
        self.assertNotIn(b"out", r.stderr)

    def test_json_events(self):
        r = self.d.cli("exec", "--json", "--runtime", "sh", "--request-id", "cli-req-7",
                       "-c", "echo hi; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr.decode())
        lines = json_lines(r.stdout)
        self.assertGreaterEqual(len(lines), 3, lines)
        for line in lines:
            self.assertEqual(len(line), 1, f"one event per line: {line}")
        started = lines[0]["started"]
        self.assertTrue(started["task_id"])
        self.assertTrue(started["token_id"])
        self.assertIsInstance(started["token_expires_at"], int)
        self.assertEqual(started["subject"], my_spiffe_id())
        self.assertEqual(started["client_request_id"], "cli-req-7")
        self.assertGreater(started["limits"]["timeout_ms"], 0)
        out = "".join(line.get("stdout", "") for line in lines[1:-1])
        self.assertEqual(out, "hi\n")
        finished = lines[-1]["finished"]
        self.assertEqual(finished["reason"], "EXIT_NONZERO")
        self.assertEqual(finished["exit_code"], 3)
        self.assertEqual(finished["signal"], 0)
        self.assertIs(finished["token_revoked"], True)
        self.assertEqual(finished["stdout_sha256"], hashlib.sha256(b"hi\n").hexdigest())
        self.assertEqual(finished["code_sha256"], hashlib.sha256(b"echo hi; exit 3").hexdigest())
        for key in ("wall_ms", "cpu_ms", "max_rss_kb", "stderr_sha256", "seccomp_syscall",
                    "message"):
            self.assertIn(key, finished)

    def test_json_ok_reason(self):
        r = self.d.cli("exec", "--json", "-c", "print('x')")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(json_lines(r.stdout)[-1]["finished"]["reason"], "OK")

    def test_json_non_utf8_output_is_base64(self):
        r = self.d.cli("exec", "--json", "--runtime", "sh", "-c", r"printf '\377\376'")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        chunks = [line for line in json_lines(r.stdout) if "stdout_b64" in line or "stdout" in line]
        data = b"".join(base64.b64decode(c["stdout_b64"]) if "stdout_b64" in c
                        else c["stdout"].encode() for c in chunks)
        self.assertEqual(data, b"\xff\xfe")
        self.assertTrue(any("stdout_b64" in c for c in chunks))

    def test_code_from_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
            f.write("echo from-file\n")
        try:
            r = self.d.cli("exec", "--runtime", "sh", f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual((r.returncode, r.stdout), (0, b"from-file\n"), r.stderr.decode())

    def test_code_from_stdin(self):
        r = self.d.cli("exec", "--runtime", "python3", "-", input=b"print('from-stdin')\n")
        self.assertEqual((r.returncode, r.stdout), (0, b"from-stdin\n"), r.stderr.decode())

    def test_stdin_flag_feeds_the_task(self):
        with tempfile.NamedTemporaryFile("wb", delete=False) as f:
            f.write(b"hello task\n")
        try:
            r = self.d.cli("exec", "--runtime", "sh", "--stdin", f.name,
                           "-c", 'read -r line; printf "got:%s\\n" "$line"')
        finally:
            os.unlink(f.name)
        self.assertEqual((r.returncode, r.stdout), (0, b"got:hello task\n"), r.stderr.decode())

    def test_addresses_from_environment(self):
        r = self.d.cli("exec", "--runtime", "sh", "-c", "echo env", env_addresses=True)
        self.assertEqual((r.returncode, r.stdout), (0, b"env\n"), r.stderr.decode())
        r = self.d.cli("keys", env_addresses=True)
        self.assertEqual(r.returncode, 0, r.stderr.decode())

    def test_flags_after_the_verb(self):
        r = self.d.cli("exec", "--runtime", "sh", "-c", "echo late",
                       "--broker", self.d.broker_addr)
        self.assertEqual((r.returncode, r.stdout), (0, b"late\n"), r.stderr.decode())


class CliErrors(DaemonTestCase):

    def test_unknown_runtime_is_invalid_argument(self):
        r = self.d.cli("exec", "--runtime", "cobol-74", "-c", "x")
        self.assertEqual(r.returncode, 69)
        self.assertRegex(r.stderr.decode(), r"^airlock: INVALID_ARGUMENT: ")
        self.assertEqual(r.stdout, b"")

    def test_unknown_runtime_json_error(self):
        r = self.d.cli("exec", "--json", "--runtime", "cobol-74", "-c", "x")
        self.assertEqual(r.returncode, 69)
        lines = json_lines(r.stdout)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["error"]["code"], "INVALID_ARGUMENT")
        self.assertTrue(lines[0]["error"]["message"])

    def test_usage_errors_exit_64(self):
        for args in (["exec"], ["exec", "--timeout-ms", "abc", "-c", "x"], ["frob"],
                     ["exec", "--bogus", "-c", "x"], []):
            r = self.d.cli(*args)
            self.assertEqual(r.returncode, 64, args)
            self.assertTrue(r.stderr.startswith(b"airlock: "), r.stderr)

    def test_code_file_too_large(self):
        with tempfile.NamedTemporaryFile("wb", delete=False) as f:
            f.write(b"#" * (4 * 1024 * 1024 + 1))
        try:
            r = self.d.cli("exec", "--runtime", "sh", f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 66)
        self.assertIn(b"larger than", r.stderr)

    def test_broker_not_there(self):
        r = self.d.cli("--broker", "unix:" + self.d.tmp + "/nothing.sock", "exec", "-c", "1")
        self.assertEqual(r.returncode, 69)
        self.assertIn(b"airlock: UNAVAILABLE: ", r.stderr)

    def test_help_and_version(self):
        r = self.d.cli("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"token introspect", r.stdout)
        r = self.d.cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^airlock \d+\.\d+")

    def test_keys(self):
        r = self.d.cli("keys")
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        jwks = json.loads(r.stdout)
        self.assertTrue(jwks["keys"])
        self.assertEqual(jwks["keys"][0]["kty"], "OKP")

    def test_health(self):
        r = self.d.cli("health")
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.assertRegex(r.stdout.decode(), r"(?m)^broker unix:\S+: SERVING$")
        self.assertRegex(r.stdout.decode(), r"(?m)^credd unix:\S+: SERVING$")


if __name__ == "__main__":
    unittest.main()
