"""The sealed channel between real daemons: what an eavesdropper on the line sees, and what a man
in the middle gets (issue 3, "Transport")."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from protocol import DecryptError, Session, parse_node_id
from protocol.channel import Channel, direction_key, shared_secret, transcript_hash
from protocol.invites import Invite
from protocol.messages import Hello, decode_message, encode_message

from .nodes import BOOKS, NodeProc, wait_for
from .proxy import FlippingProxy
from .test_two_nodes import set_setting

MakeNode = Callable[[str], NodeProc]
pytestmark = pytest.mark.slow

RECORDS = 400
WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
CLOSED_PORT = "127.0.0.1:1"  # an advertise address nobody can dial: the test decides the path


def catalogue(tmp_path: Path) -> Path:
    records = json.loads(BOOKS.read_text("utf-8"))[:RECORDS]
    path = tmp_path / "books.json"
    path.write_text(json.dumps(records), "utf-8")
    return path


def read_db(node: NodeProc) -> tuple[set[bytes], bytes]:
    """The node's titles and authors, long enough that a chance match in random bytes is
    impossible, and all its stored entries (the bytes that the sync carries)."""
    conn = sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True)
    try:
        words: set[bytes] = set()
        for title, authors in conn.execute("SELECT title, authors FROM records"):
            for text in [title, *json.loads(authors)]:
                if len(text.encode()) >= 10:
                    words.add(text.encode())
        return words, b"".join(row[0] for row in conn.execute("SELECT raw FROM entries"))
    finally:
        conn.close()


def test_an_eavesdropper_reads_nothing_of_a_sync(make_node: MakeNode, tmp_path: Path) -> None:
    a = make_node("Perpustakaan Kota Sunyi")
    b = make_node("Perpustakaan Desa Rahasia")
    a.cli("catalog", "import", str(catalogue(tmp_path)))
    proxy = FlippingProxy(a.port, record=True).start()
    try:
        set_setting(a, "advertise", f"127.0.0.1:{proxy.port}")  # B reaches A only via the line
        set_setting(b, "advertise", CLOSED_PORT)
        for node in (a, b):
            # Deflate alone scrambles text too: without it, plaintext would show every title.
            set_setting(node, "compress", "no")
            set_setting(node, "discovery", "no")  # or B finds A's own port on the LAN
        a.start()
        b.start()
        code = a.cli("peer", "invite").stdout.strip().splitlines()[-1]
        b.cli("peer", "join", code)
        wait_for(lambda: b.records() == RECORDS, 60, "B to receive A's records over the line")
    finally:
        proxy.stop()
    assert b.cli("check").returncode == 0

    sync = [s for s in proxy.streams if s[0].startswith(b"GET /sync")]
    join = [s for s in proxy.streams if s[0].startswith(b"POST /peer/join")]
    assert sync and len(join) == 1
    wire = b"".join(up + down for up, down in sync)
    words, held = read_db(a)
    assert len(words) > RECORDS // 2
    # The test could fail: A's stored entries hold every title and author in the clear.
    assert all(word in held for word in words)
    seen = sorted(word for word in words | {a.name.encode(), b.name.encode()} if word in wire)
    assert not seen, f"readable on the wire: {seen[:5]}"
    assert len(wire) > len(held)  # the records did cross this line

    # The join is plain HTTP and says who joins whom, but the invite's secret never travels.
    request, answer = join[0]
    assert b.name.encode() in request and a.name.encode() in answer
    secret = Invite.parse(code).secret
    assert secret not in request + answer
    assert not any(word in request + answer for word in words)


# --- a man in the middle ---------------------------------------------------------------------


class ManInTheMiddle:
    """An aiohttp server on its own thread that B's invite points at. It passes ``/peer/join``
    through, and on ``/sync`` either swaps the ephemeral keys in both Hellos and re-seals every
    message between the two legs it then holds keys for (``swap``), or answers and dials with a
    key of its own (``own-key``)."""

    def __init__(self, target: str, mode: str) -> None:
        self.target = target
        self.mode = mode
        self.port = 0
        self.read: list[bytes] = []  # what it managed to decrypt
        self.errors: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ManInTheMiddle:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("man in the middle did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/peer/join", self._join)
        app.router.add_get("/sync", self._sync)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _join(self, request: web.Request) -> web.Response:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://{self.target}/peer/join",
                data=await request.read(),
                headers={"Content-Type": request.content_type},
            ) as answer,
        ):
            body = await answer.read()
            return web.Response(status=answer.status, body=body, content_type=answer.content_type)

    async def _sync(self, request: web.Request) -> web.WebSocketResponse:
        ws_a = web.WebSocketResponse()
        await ws_a.prepare(request)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"http://{self.target}/sync") as ws_b,
        ):
            try:
                if self.mode == "swap":
                    await self._swap(ws_a, ws_b)
                else:
                    await asyncio.gather(self._pose(ws_a), self._pose(ws_b))
            except Exception as exc:  # the attacker's own failures, kept for the report
                self.errors.append(f"{type(exc).__name__}: {exc}")
        await ws_a.close()
        return ws_a

    async def _pose(self, ws: WebSocket) -> None:
        """Speak for itself, with its own node key, to one side, until that side closes."""
        session = Session(Ed25519PrivateKey.generate(), bytes(32), "Perpustakaan Palsu")
        await ws.send_bytes(session.hello())
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            received = session.receive(msg.data)
            if isinstance(received, Hello):
                await ws.send_bytes(session.auth())

    async def _swap(
        self, ws_a: web.WebSocketResponse, ws_b: aiohttp.ClientWebSocketResponse
    ) -> None:
        # One leg per victim; the leg to A pretends to be B, the leg to B pretends to be A.
        legs = {"a": _Leg(), "b": _Leg()}

        async def pump(src: str, dst: str, rx: WebSocket, tx: WebSocket) -> None:
            async for msg in rx:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                data: bytes = msg.data
                mine, theirs = legs[src], legs[dst]
                if mine.victim_hello is None:  # the victim's Hello: swap in our ephemeral
                    hello = decode_message(data)
                    assert isinstance(hello, Hello)
                    mine.victim_hello, mine.victim = data, hello
                    fake = Hello(hello.version, hello.node_key, hello.nonce, theirs.public)
                    theirs.fake_hello = encode_message(fake)
                    await tx.send_bytes(theirs.fake_hello)
                    continue
                plain = mine.open(data)
                self.read.append(plain)
                await tx.send_bytes(theirs.seal(plain))
            await tx.close()

        await asyncio.gather(pump("a", "b", ws_a, ws_b), pump("b", "a", ws_b, ws_a))


class _Leg:
    """The attacker's half of one victim's channel: it sent the victim a Hello with its own
    ephemeral key, so it holds that channel's keys."""

    def __init__(self) -> None:
        self.ephemeral = X25519PrivateKey.generate()
        self.public = self.ephemeral.public_key().public_bytes_raw()
        self.victim_hello: bytes | None = None
        self.victim: Hello | None = None
        self.fake_hello: bytes | None = None  # what we sent the victim, claiming the other's key
        self._channel: Channel | None = None

    def channel(self) -> Channel:
        if self._channel is None:
            assert self.victim and self.victim_hello and self.fake_hello
            claimed = decode_message(self.fake_hello)
            assert isinstance(claimed, Hello)
            th = transcript_hash(
                [(self.victim.node_key, self.victim_hello), (claimed.node_key, self.fake_hello)]
            )
            shared = shared_secret(self.ephemeral, self.victim.ephemeral)
            self._channel = Channel(
                direction_key(shared, th, claimed.node_key),
                direction_key(shared, th, self.victim.node_key),
            )
        return self._channel

    def open(self, data: bytes) -> bytes:
        try:
            return self.channel().open(data)
        except DecryptError:
            return data  # a plaintext Close from a side that refused our Hello

    def seal(self, data: bytes) -> bytes:
        return self.channel().seal(data)


@pytest.mark.parametrize("mode", ["swap", "own-key"])
def test_a_man_in_the_middle_is_refused_by_both_sides(
    make_node: MakeNode, tmp_path: Path, mode: str
) -> None:
    a = make_node("Library A")
    b = make_node("Library B")
    b.cli("catalog", "import", str(catalogue(tmp_path)))
    mitm = ManInTheMiddle(b.address, mode).start()
    try:
        # A knows B only by the address in B's invite, which is the attacker's; B cannot dial A.
        set_setting(b, "advertise", f"127.0.0.1:{mitm.port}")
        set_setting(a, "advertise", CLOSED_PORT)
        for node in (a, b):
            set_setting(node, "discovery", "no")  # or A finds B's own port on the LAN
        a.start()
        b.start()
        code = b.cli("peer", "invite").stdout.strip().splitlines()[-1]
        a.cli("peer", "join", code)  # through the attacker: the join itself is signed
        b_id = b.status()["node_id"]
        assert parse_node_id(b_id) == Invite.parse(code).key

        def refused(node: NodeProc, reason: str | None) -> bool:
            status = node.status()
            return (
                int(status["rejected_by_reason"].get(reason, 0) if reason else status["rejected"])
                >= 1
            )

        # A dials for B's key and refuses whoever cannot prove it; B refuses the attacker as
        # a stranger with a key of its own (own-key), or as A failing to prove A's (swap).
        b_reason = "auth" if mode == "swap" else None
        wait_for(
            lambda: refused(a, "auth") and refused(b, b_reason), 30, "both to refuse the attacker"
        )
        if mode == "swap":
            # It holds both legs' keys, so it read the Auth messages; but no signature verified,
            # so nothing past the handshake was ever sent: only Auths and Closes.
            kinds = {type(decode_message(m)).__name__ for m in mitm.read}
            assert "Auth" in kinds and kinds <= {"Auth", "Close"}, kinds
            failed = "failed to prove it holds its key"
            wait_for(lambda: failed in a.log() and failed in b.log(), 10, "both to say why")
        else:
            b_short = b_id[:9]
            assert f"expected {b_short}" in a.log()  # A dialled for B's key, and got another
    finally:
        mitm.stop()
    assert a.records() == 0  # nothing of B's catalogue reached A through the attacker
    status = a.status()
    assert status["records"] == 0 and not any(p["connected"] for p in status["peers"])
