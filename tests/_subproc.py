"""A child Python process whose output lines are read with a timeout.

The Ctrl-C tests wait for lines such as ``ready`` or ``interrupted``; a blocking
``readline()`` would turn a regression (the child never answers) into a hang of the
whole suite. Here a reader thread queues the child's lines, and :meth:`Child.line`
fails the test when none arrives in time.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading

import pytest


class Child:
    """``python -c code *args`` with stdout lines readable under a timeout."""

    def __init__(self, code: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)  # end of output

    def line(self, timeout: float) -> str:
        """The next output line (stripped); fails the test after ``timeout`` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"no output line from the child within {timeout} s")
        if line is None:
            err = self.finish(timeout=10)[1]
            pytest.fail(f"the child exited (code {self.proc.returncode}) early: {err}")
        return line.strip()

    def rest(self) -> str:
        """Output lines already read and not yet returned by :meth:`line`."""
        out = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                out.append(line)
        return "".join(out)

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for the exit (killing the child after ``timeout`` s): (code, stderr)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the child did not exit within {timeout} s")
        self._reader.join(timeout=10)
        return self.proc.returncode, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
