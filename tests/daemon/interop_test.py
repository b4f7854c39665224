#!/usr/bin/python3
"""visitd driven by an independent client: Debian's python3-websockets and urllib.

Usage: interop_test.py PATH/TO/visitd

Starts the daemon on port 0 in a temp dir, imports a rota over HTTP, connects a carer (token
in the upgrade header, minted by `visitd token`) and a board (token in the first message,
minted here), and checks the rota push, check_in -> ack accepted, the duplicate, the board's
snapshot and the visit delta. Exits non-zero with a message on the first mismatch.
"""

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zoneinfo

import websockets

SECRET = "interop-test-secret-0123456789abcdef"
LONDON = zoneinfo.ZoneInfo("Europe/London")
TIMEOUT = 5


class Mismatch(Exception):
    pass


def expect(what, got, wanted):
    if got != wanted:
        raise Mismatch(f"{what}: expected {wanted!r}, got {got!r}")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(sub, role, branches):
    """An HS256 JWT written from RFC 7519 by hand, not by visitd's code."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": sub, "role": role, "branches": branches, "exp": int(time.time()) + 3600}
    payload = b64url(json.dumps(claims).encode())
    signature = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def rfc3339(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Daemon:
    def __init__(self, binary, workdir):
        self.config = os.path.join(workdir, "visitd.toml")
        with open(self.config, "w") as f:
            f.write(
                '[server]\nlisten = "127.0.0.1:0"\n'
                f'[store]\ndir = "{os.path.join(workdir, "data")}"\n'
                f'[auth]\nsecret = "{SECRET}"\n'
                '[[branches]]\nid = "B1"\ntimezone = "Europe/London"\n'
            )
        self.binary = binary
        self.log_path = os.path.join(workdir, "visitd.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [binary, "run", "--config", self.config], stdout=self.log, stderr=self.log, cwd=workdir
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.log_path) as f:
                for line in f:
                    if "listening addr=" in line:
                        addr = line.split("listening addr=")[1].split()[0]
                        return int(addr.rsplit(":", 1)[1])
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise Mismatch("visitd did not start listening:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def token(self, role, sub):
        out = subprocess.run(
            [self.binary, "token", "--config", self.config, "--role", role, "--sub", sub],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def http(self, method, target, token, body=None, content_type=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{target}", data=body, method=method,
            headers={"Authorization": f"Bearer {token}"},
        )
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


async def receive(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def scenario(daemon):
    now = datetime.datetime.now(LONDON)
    midnight = now.replace(hour=0, minute=1, second=0, microsecond=0)
    start = max(now - datetime.timedelta(minutes=5), midnight)
    end = start + datetime.timedelta(hours=1)
    csv = (
        "visit_id,client_id,client_name,lat,lon,carers,start,end\n"
        f"V1,CL1,Mrs A,51.5014,-0.1419,C1,{rfc3339(start)},{rfc3339(end)}\n"
        f"V2,CL2,Mr B,51.5100,-0.1300,C2,{rfc3339(start)},{rfc3339(end)}\n"
    )
    admin = mint("root", "admin", ["*"])
    status, body = daemon.http(
        "PUT", f"/api/rota?branch=B1&date={now.date().isoformat()}", admin, csv.encode(), "text/csv"
    )
    expect("rota import status", status, 200)
    expect("visits imported", body.get("imported"), 2)

    uri = f"ws://127.0.0.1:{daemon.port}"
    async with websockets.connect(f"{uri}/ws/board", open_timeout=TIMEOUT) as board:
        await board.send(json.dumps({"type": "auth", "token": mint("olga", "office", ["B1"])}))
        snapshot = await receive(board)
        expect("board's first message", snapshot.get("type"), "snapshot")
        expect("snapshot visits", sorted(v["id"] for v in snapshot["visits"]), ["V1", "V2"])

        headers = {"Authorization": f"Bearer {daemon.token('carer', 'C1')}"}
        async with websockets.connect(
            f"{uri}/ws/carer", extra_headers=headers, open_timeout=TIMEOUT
        ) as phone:
            rota = await receive(phone)
            expect("carer's first message", rota.get("type"), "rota")
            expect("carer's visits", [v["id"] for v in rota["visits"]], ["V1"])

            event = {
                "type": "check_in", "id": "py-1", "visit": "V1",
                "at": rfc3339(datetime.datetime.now(datetime.timezone.utc)),
                "lat": 51.5014, "lon": -0.1419, "accuracy": 12, "method": "gps",
            }
            await phone.send(json.dumps(event))
            ack = await receive(phone)
            expect("ack", {k: ack.get(k) for k in ("type", "id", "status", "visit", "state")},
                   {"type": "ack", "id": "py-1", "status": "accepted", "visit": "V1",
                    "state": "in_progress"})
            expect("ack flags", ack.get("flags"), [])

            await phone.send(json.dumps(event))
            duplicate = await receive(phone)
            expect("resent event", (duplicate.get("status"), duplicate.get("state")),
                   ("duplicate", "in_progress"))

        delta = await receive(board)
        expect("board delta type", delta.get("type"), "visit")
        expect("delta visit", delta["visit"]["id"], "V1")
        expect("delta state", delta["visit"]["state"], "in_progress")
        expect("delta check-in carer", [c["carer"] for c in delta["visit"]["check_ins"]], ["C1"])


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="visitd-interop-") as workdir:
        daemon = None
        try:
            daemon = Daemon(os.path.abspath(sys.argv[1]), workdir)
            asyncio.run(scenario(daemon))
            status = daemon.stop()
            expect("exit status after SIGTERM", status, 0)
        except (Mismatch, asyncio.TimeoutError, websockets.WebSocketException, OSError) as e:
            print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
            if daemon is not None:
                daemon.stop()
                print("--- visitd log ---\n" + daemon.read_log(), file=sys.stderr)
            return 1
    print(f"ok: python3-websockets {websockets.__version__} interoperates with visitd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
