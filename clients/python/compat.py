#!/usr/bin/env python3
"""Python SSE clients against a real Herald: httpx-sse and sseclient-py.

The scenario of web/compat/scenario.mjs: e0 is published; the client opens
`/events?topic=compat/*&lastEventID=<e0>` after e1 and e2 were (a replay), e3 comes live; the
node is stopped with SIGTERM (a drain: a reconnect inside `drain_grace_ms` must be told
`herald.shutdown` with a 200), then killed with kill -9, each time restarted on the same port and
data with two events published while the client is away and one once it is back. The client
must end with exactly e1..e9: no gap, no duplicate, in order, named and unnamed events alike.

Neither library reconnects by itself, so each runs in the loop a user writes: reconnect after
the `retry:` with the newest id in `Last-Event-ID` (the URL keeps `lastEventID=<e0>`; the header
wins, SPEC section 2). httpx-sse turns the opening `retry:` block and every heartbeat comment into
a `message` with empty data (its own open bug): the loop drops `data == ""`, as users must.

Run: python3 clients/python/compat.py (after `cargo build -p herald-cli`; HERALD_BIN or
CARGO_TARGET_DIR point elsewhere). Needs `pip install httpx-sse sseclient-py`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from importlib.metadata import version

import httpx
import httpx_sse
import sseclient

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("HERALD_BIN") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "debug", "herald"
)
RETRY_MS = 250
DRAIN_GRACE_MS = 1500
PATIENCE = 15.0


def until(check, what, timeout=PATIENCE):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Herald:
    """One herald process on a fixed port and data directory, restartable."""

    def __init__(self, workdir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = os.path.join(workdir, "data")
        self.config = os.path.join(workdir, "herald.toml")
        with open(self.config, "w") as f:
            f.write(f"retry_ms = {RETRY_MS}\ndrain_grace_ms = {DRAIN_GRACE_MS}\n")
        self.log = open(os.path.join(workdir, "herald.log"), "wb")
        self.child = None

    def start(self):
        if not os.path.exists(BIN):
            raise SystemExit(f"no herald binary at {BIN}: run `cargo build -p herald-cli` first")
        # The server reads every HERALD_* variable as configuration: none of ours goes in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        args = ["serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir]
        args += ["--config", self.config]
        self.child = subprocess.Popen([BIN, *args], env=env, stdout=self.log, stderr=self.log)

        def ready():
            if self.child.poll() is not None:
                raise AssertionError(f"herald exited with {self.child.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as r:
                    return r.status == 200
            except (urllib.error.URLError, ConnectionError):
                return False

        until(ready, f"herald ready on {self.url}")

    def stop(self, sig):
        self.child.send_signal(sig)
        code = self.child.wait(timeout=PATIENCE)
        self.child = None
        return code

    def publish(self, event):
        body = json.dumps(event).encode()
        request = urllib.request.Request(
            f"{self.url}/publish", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=PATIENCE) as r:
            return json.load(r)["ids"][0]

    def dispose(self):
        if self.child:
            self.child.kill()
            self.child.wait()


def read_httpx_sse(url, headers):
    """(id, type, data) of every event on one connection, through httpx-sse."""
    timeout = httpx.Timeout(5.0, read=None)
    with httpx.Client(timeout=timeout) as client:
        with httpx_sse.connect_sse(client, "GET", url, headers=headers) as source:
            source.response.raise_for_status()
            for sse in source.iter_sse():
                yield sse.id, sse.event, sse.data


def read_sseclient(url, headers):
    """(id, type, data) of every event on one connection, through sseclient-py over urllib."""
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        for event in sseclient.SSEClient(response).events():
            yield event.id, event.event, event.data


class Follower(threading.Thread):
    """The reconnect loop a user writes around a client that does not reconnect by itself."""

    def __init__(self, url, read):
        super().__init__(daemon=True)
        self.url, self.read = url, read
        self.received, self.shutdowns, self.resets, self.empty, self.failures = [], 0, 0, 0, []
        self.last = None

    def run(self):
        while True:
            headers = {"Accept": "text/event-stream"}
            if self.last:
                headers["Last-Event-ID"] = self.last
            try:
                for event_id, kind, data in self.read(self.url, headers):
                    if data == "":
                        # httpx-sse: the `retry:` block and heartbeat comments.
                        self.empty += 1
                    elif kind == "herald.shutdown":
                        self.shutdowns += 1
                    elif kind == "herald.reset":
                        self.resets += 1
                    elif not kind.startswith("herald."):
                        self.received.append((event_id, kind, data))
                        self.last = event_id
            except Exception as e:  # refused while the node restarts, or dropped by kill -9
                self.failures.append(type(e).__name__)
            time.sleep(RETRY_MS / 1000)


def event(n):
    if n % 2:
        return {"topic": "compat/odd", "type": "compat.tick", "data": {"n": n}}
    return {"topic": "compat/even", "data": {"n": n}}


def scenario(read):
    with tempfile.TemporaryDirectory(prefix="herald-compat-py-") as workdir:
        herald = Herald(workdir)
        herald.start()
        try:
            published = []

            def publish(n):
                e = event(n)
                published.append((herald.publish(e), e.get("type", "message"), json.dumps({"n": n}, separators=(",", ":"))))

            e0 = herald.publish(event(0))
            publish(1)
            publish(2)
            follower = Follower(f"{herald.url}/events?topic=compat/*&lastEventID={e0}", read)
            follower.start()
            has = lambda what: until(lambda: len(follower.received) >= len(published), f"{len(published)} events {what}: {follower.received}")
            has("replayed after e0")
            publish(3)
            has("live")
            drain_shutdowns = 0
            for sig in (signal.SIGTERM, signal.SIGKILL):
                before = follower.shutdowns
                code = herald.stop(sig)
                if sig == signal.SIGTERM:
                    assert code == 0, f"a drain exits 0, not {code}"
                    drain_shutdowns = follower.shutdowns - before
                herald.start()
                publish(len(published) + 1)
                publish(len(published) + 1)
                has(f"after {sig.name}, replayed")
                publish(len(published) + 1)
                has(f"after {sig.name}, live")
            assert follower.received == published, (
                f"exactly the published sequence: got {follower.received}, published {published}"
            )
            assert follower.resets == 0, "every id resumed"
            assert drain_shutdowns >= 2, (
                f"a reconnect inside the {DRAIN_GRACE_MS} ms drain was told herald.shutdown "
                f"({drain_shutdowns} shutdowns; failures {follower.failures})"
            )
            return {"published": len(published), "drain_shutdowns": drain_shutdowns, "empty_messages": follower.empty}
        finally:
            herald.dispose()


def main():
    clients = [
        (f"httpx-sse {version('httpx-sse')} (httpx {version('httpx')})", read_httpx_sse),
        (f"sseclient-py {version('sseclient-py')} (urllib)", read_sseclient),
    ]
    passed = failed = 0
    for name, read in clients:
        try:
            result = scenario(read)
            print(f"ok - {name}: {json.dumps(result)}", flush=True)
            passed += 1
        except Exception as e:  # report every client, then fail
            print(f"not ok - {name}: {type(e).__name__}: {e}", flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
