"""Arize Phoenix for the integration tests: installed once into a cached venv, run on loopback.

Phoenix is a separate server process, so its venv need not use the tests' Python: it is always
built with one interpreter (a Python 3.11 when pyenv or PATH has one, else the tests' own), which
makes CI install it once per machine rather than once per Python. The venv lives in
``~/.cache/graphtrace-test/phoenix-<version>-py<X.Y>`` (``$XDG_CACHE_HOME`` is honoured) and is
reused when present; it is built under a lock and marked complete only at the end, so a
half-built venv (an interrupted install) is built again rather than used.

    server = PhoenixServer.start(install_phoenix(), tmp_path)
    server.spans("my-project")
    server.stop()

When the package cannot be installed (no registry), :func:`install_phoenix` skips the test and
says why; with ``GRAPHTRACE_REQUIRE_PHOENIX=1`` (for CI) it fails instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.otlp_receiver import free_port

PHOENIX_VERSION = "20.26.1"  # the release these tests were written against
INSTALL_TIMEOUT = 1200.0  # seconds; a cold install downloads about 850 MB of wheels
START_TIMEOUT = 240.0  # seconds; the first start compiles and migrates a fresh database
REQUIRE_ENV = "GRAPHTRACE_REQUIRE_PHOENIX"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "graphtrace-test"


def phoenix_python() -> str:
    """The interpreter Phoenix's venv is built with: a 3.11 when there is one."""
    if chosen := os.environ.get("GRAPHTRACE_PHOENIX_PYTHON"):
        return chosen
    pyenv = shutil.which("pyenv")
    if pyenv:
        versions = subprocess.run(
            [pyenv, "versions", "--bare"], capture_output=True, text=True, timeout=30
        ).stdout.split()
        for version in sorted((v for v in versions if v.startswith("3.11.")), reverse=True):
            found = subprocess.run(
                [pyenv, "which", "python"],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "PYENV_VERSION": version},
            )
            if found.returncode == 0 and found.stdout.strip():
                return found.stdout.strip()
    return shutil.which("python3.11") or sys.executable


def install_phoenix() -> Path:
    """The ``phoenix`` executable of the cached venv, installing it first when needed."""
    python = phoenix_python()
    tag = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    venv = cache_root() / f"phoenix-{PHOENIX_VERSION}-py{tag}"
    executable = venv / "bin" / "phoenix"
    if (venv / ".complete").exists():
        return executable
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _locked(venv.parent / f".{venv.name}.lock"):
        if (venv / ".complete").exists():  # another process built it meanwhile
            return executable
        shutil.rmtree(venv, ignore_errors=True)  # what an interrupted install left
        started = time.monotonic()
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
        try:
            out = subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--quiet",
                    f"arize-phoenix=={PHOENIX_VERSION}",
                ],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            _cannot(f"installing arize-phoenix took longer than {INSTALL_TIMEOUT:.0f} s")
        if out.returncode != 0:
            _cannot(f"pip could not install arize-phoenix: {_tail(out.stderr + out.stdout)}")
        seconds = time.monotonic() - started
        (venv / ".complete").write_text(json.dumps({"install_seconds": round(seconds, 1)}))
    return executable


def _cannot(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"Phoenix is required ({REQUIRE_ENV}) but {reason}")
    pytest.skip(f"Phoenix integration test skipped: {reason}")


def _tail(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and "is ignored" not in line]
    return " | ".join(lines[-3:]) or "no output"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class PhoenixServer:
    """A Phoenix server on 127.0.0.1; ``url`` is its HTTP base (OTLP at ``url/v1/traces``)."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    start_seconds: float

    @classmethod
    def start(cls, executable: Path, workdir: Path) -> PhoenixServer:
        port, grpc_port = free_port(), free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))},
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_WORKING_DIR": str(workdir),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        }
        log = workdir / "phoenix.log"
        started = time.monotonic()
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(executable), "serve"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=workdir,
            )
        server = cls(process, f"http://127.0.0.1:{port}", log, 0.0)
        deadline = started + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"Phoenix exited with {process.returncode} before it was ready: "
                    f"{_tail(log.read_text(errors='replace'))}"
                )
            if server._healthy():
                server.start_seconds = time.monotonic() - started
                return server
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(
                    f"Phoenix did not answer /healthz within {START_TIMEOUT:.0f} s: "
                    f"{_tail(log.read_text(errors='replace'))}"
                )
            time.sleep(0.25)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)

    def spans(self, project: str) -> list[dict[str, Any]]:
        """Every span Phoenix stored for ``project`` (none when it has no such project yet)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        name = urllib.parse.quote(project, safe="")
        while True:
            query = {"limit": "500", **({"cursor": cursor} if cursor else {})}
            url = f"{self.url}/v1/projects/{name}/spans?{urllib.parse.urlencode(query)}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    page = json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return []  # the project is made when its first span is stored
                raise
            out.extend(page.get("data") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def wait_for_spans(
        self,
        project: str,
        done: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 90.0,
    ) -> list[dict[str, Any]]:
        """Poll until ``done(spans)``: Phoenix stores what it receives asynchronously."""
        deadline = time.monotonic() + timeout
        spans = self.spans(project)
        while not done(spans):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Phoenix project {project!r} did not get the spans within {timeout:.0f} s; "
                    f"it has {len(spans)}: {sorted(s.get('name', '?') for s in spans)}"
                )
            time.sleep(0.5)
            spans = self.spans(project)
        return spans
