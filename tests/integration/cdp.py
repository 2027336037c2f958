"""Headless Chromium driven over the Chrome DevTools Protocol, with the Python standard library only.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from its file descriptor 3
and writes replies and events to its file descriptor 4, one JSON object per message, each followed
by a NUL byte. No port is opened and nothing is fetched from the network.

- ``Browser(executable, artifacts_dir)``: starts Chromium in a new process group with a fresh
  temporary profile; ``.new_page()`` opens a tab and returns a ``Page``; ``.cookies()`` lists every
  cookie of the profile (``Storage.getCookies``, HttpOnly ones included); ``.close()`` asks Chromium
  to exit, kills the whole process group if it has not within a deadline, waits until no process of
  the group is left and removes the profile. Every wait has a deadline (``CdpTimeout``).
- ``Page``: ``navigate``, ``reload``, ``evaluate`` (JavaScript in the page), ``click`` (real mouse
  events at the element's centre), ``type`` (focus, then text insertion as from a keyboard),
  ``wait_for_load`` around an action, ``screenshot``.

Chromium needs ``--no-sandbox`` when run as root; it is started only on loopback URLs here.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

DEFAULT_TIMEOUT_S = 20.0  # one command or one page load; generous for a loaded 2-core machine
START_TIMEOUT_S = 30.0    # first answer on the pipe after the process starts
EXIT_TIMEOUT_S = 10.0     # Browser.close until the whole process group is gone

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-breakpad", "--disable-extensions", "--disable-default-apps", "--no-proxy-server",
    "--password-store=basic", "--use-mock-keychain", "--mute-audio", "--window-size=1024,900",
    "--remote-debugging-pipe",
]


class CdpError(AssertionError):
    """A protocol command failed, or the page threw."""


class CdpTimeout(AssertionError):
    """A reply or an event did not come within its deadline."""


def _process_group_members(pgid: int) -> list[int]:
    """Live pids whose process group is pgid (zombies, already dead, are left out: orphans are
    reaped by whichever process adopted them, which in a container may never happen)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            pids.append(int(entry))
    return pids


class Browser:
    """One Chromium process (and its children) with a temporary profile."""

    def __init__(self, executable: str, log_dir: str, extra_flags: tuple[str, ...] = ()):
        self.profile = tempfile.mkdtemp(prefix="sg-chromium-")  # profile, and a home for Chromium
        self.stderr_path = os.path.join(log_dir, "chromium-stderr.log")
        self._lock = threading.Condition()
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []
        self._closed_reason: str | None = None
        # Our ends stay close-on-exec. Chromium's ends are first duplicated to 10 and up, so that
        # moving them to 3 and 4 (bash below; dash cannot name descriptors above 9) cannot clobber one
        # with the other.
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        child_in = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)
        args = [*CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={os.path.join(self.profile, 'data')}",
                "about:blank"]
        # Chromium also writes outside its profile (crash report settings under ~/.config, dconf
        # under ~/.cache): a home of its own inside the temporary directory keeps the real one clean.
        home = os.path.join(self.profile, "home")
        env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_CACHE_HOME=os.path.join(home, ".cache"))
        script = f'exec "$0" "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(["/bin/bash", "-c", script, executable, *args],
                                         pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=err, start_new_session=True, env=env)
        os.close(child_in)
        os.close(child_out)
        self.pgid = self.proc.pid  # start_new_session: the child leads its own process group
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()
        try:
            self.version = self.send("Browser.getVersion", timeout=START_TIMEOUT_S)
        except AssertionError:
            self.close()
            raise

    # -- transport ---------------------------------------------------------------------------
    def _read_loop(self):
        buf = b""
        reason = "Chromium closed its end of the pipe"
        try:
            while True:
                data = os.read(self._from_child, 1 << 16)
                if not data:
                    break
                buf += data
                *messages, buf = buf.split(b"\0")
                with self._lock:
                    for raw in messages:
                        msg = json.loads(raw)
                        if "id" in msg:
                            self._replies[msg["id"]] = msg
                        else:
                            self._events.append(msg)
                    self._lock.notify_all()
        except (OSError, ValueError) as exc:
            reason = f"reading the pipe failed: {exc!r}"
        with self._lock:
            self._closed_reason = reason
            self._lock.notify_all()

    def _stderr_tail(self) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def send(self, method: str, params: dict | None = None, session_id: str | None = None,
             timeout: float = DEFAULT_TIMEOUT_S) -> dict:
        """Send one command and return its result; CdpError on a protocol error."""
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session_id is not None:
            msg["sessionId"] = session_id
        data = memoryview(json.dumps(msg).encode() + b"\0")
        try:
            while data:  # only this thread writes; a long message may take several writes
                data = data[os.write(self._to_child, data):]
        except OSError as exc:
            raise CdpError(f"{method}: cannot write to Chromium ({exc!r}); stderr: {self._stderr_tail()}") from None
        deadline = time.monotonic() + timeout
        with self._lock:
            while msg_id not in self._replies:
                if self._closed_reason is not None:
                    raise CdpError(f"{method}: {self._closed_reason}; stderr: {self._stderr_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CdpTimeout(f"{method}: no reply within {timeout}s; stderr: {self._stderr_tail()}")
                self._lock.wait(left)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def event_mark(self) -> int:
        with self._lock:
            return len(self._events)

    def wait_event(self, method: str, session_id: str | None, since: int, timeout: float = DEFAULT_TIMEOUT_S) -> dict:
        """The first event `method` (of `session_id`) received after mark `since`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for ev in self._events[since:]:
                    if ev.get("method") == method and ev.get("sessionId") == session_id:
                        return ev
                since = len(self._events)
                if self._closed_reason is not None:
                    raise CdpError(f"waiting for {method}: {self._closed_reason}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CdpTimeout(f"no {method} event within {timeout}s")
                self._lock.wait(left)

    # -- browser-level commands --------------------------------------------------------------
    def new_page(self) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        return page

    def cookies(self) -> list[dict]:
        """Every cookie in the profile, as Chromium stores it (name, value, httpOnly, ...)."""
        return self.send("Storage.getCookies")["cookies"]

    def close(self):
        """Exit Chromium and every process it started; remove the profile. Idempotent."""
        if self.proc.poll() is None and self._closed_reason is None:
            try:
                self.send("Browser.close", timeout=5.0)
            except AssertionError:
                pass  # the reply may never come: the process is going away
        try:
            self.proc.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left of the group (renderers, zygote, utility processes) is killed.
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while True:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc.poll() is None:
                try:
                    self.proc.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
            left_over = _process_group_members(self.pgid)
            if not left_over:
                break
            if time.monotonic() >= deadline:
                raise AssertionError(f"Chromium processes {left_over} still alive {EXIT_TIMEOUT_S}s after kill")
            time.sleep(0.05)
        # Every writer of the pipe is gone, so the reader has seen EOF (or soon will): join it before
        # closing the descriptor it reads.
        self._reader.join(timeout=EXIT_TIMEOUT_S)
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab, attached with a flat session: commands carry its sessionId."""

    def __init__(self, browser: Browser, session_id: str):
        self.browser = browser
        self.session_id = session_id

    def send(self, method: str, params: dict | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> dict:
        return self.browser.send(method, params, session_id=self.session_id, timeout=timeout)

    def wait_for_load(self, action, timeout: float = DEFAULT_TIMEOUT_S):
        """Run action() and wait for the load event of the document it leads to."""
        mark = self.browser.event_mark()
        result = action()
        self.browser.wait_event("Page.loadEventFired", self.session_id, mark, timeout)
        return result

    def navigate(self, url: str):
        def go():
            result = self.send("Page.navigate", {"url": url})
            if result.get("errorText"):
                raise CdpError(f"navigating to {url}: {result['errorText']}")
        self.wait_for_load(go)

    def reload(self):
        self.wait_for_load(lambda: self.send("Page.reload", {"ignoreCache": True}))

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def url(self) -> str:
        return self.evaluate("location.href")

    def text(self, selector: str) -> str | None:
        """textContent of the first match, None when nothing matches."""
        return self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? null")

    def click(self, selector: str):
        """A left click with real mouse events at the centre of the element."""
        box = self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return null;
            el.scrollIntoView({{block: "center"}});
            const r = el.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2];
        }})()""")
        if box is None:
            raise CdpError(f"no element matches {selector!r} on {self.url()}")
        x, y = box
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def type(self, selector: str, text: str):
        """Focus the element and insert text as the keyboard would."""
        if not self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el) return false;
            el.focus();
            return document.activeElement === el;
        }})()"""):
            raise CdpError(f"cannot focus {selector!r} on {self.url()}")
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: str):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
