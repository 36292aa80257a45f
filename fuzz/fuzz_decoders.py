"""Coverage-guided fuzzing of every protocol decoder with atheris (libFuzzer).

    python fuzz/fuzz_decoders.py -max_total_time=60 [corpus_dir]

The first input byte picks a decoder and whether to start from a valid sample (then the rest of
the input edits it) or from the raw bytes. A crash is any exception other than a ProtocolError
subclass (ValueError for parse_node_id), or a decoded value that does not round-trip.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

try:
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    sys.stderr.write(
        "fuzz_decoders: atheris is not installed (pip install atheris; it needs a clang-built\n"
        "CPython on some platforms). The same decoders are fuzzed by hypothesis in\n"
        "tests/test_protocol_fuzz.py.\n"
    )
    sys.exit(2)

with atheris.instrument_imports():
    import msgpack
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from protocol import (
        ForkProof,
        LogKey,
        ProtocolError,
        decode_entry,
        fork_proof,
        node_id,
        parse_node_id,
        public_bytes,
        sign_entry,
    )
    from protocol.chains import Head
    from protocol.encoding import pack, unpack
    from protocol.limits import Limits
    from protocol.messages import (
        Ack,
        Auth,
        Close,
        Entries,
        Frontier,
        Hello,
        Request,
        decode_message,
        encode_message,
    )

_KEY = Ed25519PrivateKey.from_private_bytes(b"\x42" * 32)
_AUTHOR = public_bytes(_KEY)
_LOG = LogKey(_AUTHOR, "catalog")
_E1 = sign_entry(
    _KEY,
    log="catalog",
    seq=1,
    prev=None,
    timestamp=1,
    kind="catalog",
    body={"ops": [["put", "r1", {"title": "T", "year": 1999, "holdings": [{"note": "n"}]}]]},
)
_E2 = sign_entry(
    _KEY,
    log="catalog",
    seq=2,
    prev=_E1.hash,
    timestamp=2,
    kind="catalog",
    body={"ops": [["del", "r1"]]},
)
_E2B = sign_entry(
    _KEY, log="catalog", seq=2, prev=_E1.hash, timestamp=3, kind="profile", body={"name": "N"}
)
_PROOF = fork_proof(_E2, _E2B)
assert _PROOF is not None
_MESSAGES = [
    encode_message(m)
    for m in (
        Hello(1, _AUTHOR, b"\x01" * 32, "node"),
        Auth(b"\x02" * 64),
        Frontier(((_LOG, Head(2, _E2.hash)),)),
        Request(_LOG, 1, 2),
        Entries(_LOG, (_E1.raw, _E2.raw)),
        Ack(_LOG, 2),
        Close("bye"),
    )
]
_ENTRIES = [_E1.raw, _E2.raw, _E2B.raw]
_PAYLOADS = [msgpack.unpackb(raw)[0] for raw in _ENTRIES]
_SAMPLES = [*_MESSAGES, *_ENTRIES, *_PAYLOADS, _PROOF.to_bytes()]
_LIMITS = [Limits(), Limits(max_string_bytes=64, max_list_items=8, max_map_items=8)]


def _message(data: bytes, limits: Limits) -> None:
    msg = decode_message(data, limits)
    if decode_message(encode_message(msg), limits) != msg:
        raise AssertionError(f"message does not round-trip: {msg!r}")


def _entry(data: bytes, limits: Limits) -> None:
    entry = decode_entry(data, now_ms=10**13, limits=limits)
    if entry.hash != hashlib.sha256(msgpack.unpackb(data)[0]).digest():
        raise AssertionError("entry hash is not sha256 of its payload")


def _unpack(data: bytes, limits: Limits) -> None:
    value = unpack(data, what="fuzz", limits=limits, max_bytes=1 << 20)
    try:
        again = unpack(pack(value), what="fuzz", limits=limits, max_bytes=1 << 20)
    except TypeError:
        return  # floats and mixed-type keys decode but never encode
    if again != value:
        raise AssertionError("canonical re-encoding changed the value")


def _signed_payload(data: bytes, limits: Limits) -> None:
    # Sign whatever the fuzzer made, so that the envelope and body checks behind the signature
    # are explored too, not just the signature failing.
    _entry(pack([data, _KEY.sign(b"peernode/entry/v1\x00" + data)]), limits)


def _proof(data: bytes, limits: Limits) -> None:
    ForkProof.from_bytes(data, limits).verify(limits)


def _node_id(data: bytes, limits: Limits) -> None:
    text = data.decode("utf-8", "replace")
    try:
        key = parse_node_id(text)
    except ValueError:
        return
    if parse_node_id(node_id(key)) != key:
        raise AssertionError("node id does not round-trip")


_DECODERS: list[Callable[[bytes, Limits], None]] = [
    _message,
    _entry,
    _signed_payload,
    _unpack,
    _proof,
    _node_id,
]


def _edit(sample: bytes, fdp: atheris.FuzzedDataProvider) -> bytes:
    buf = bytearray(sample)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        if not buf:
            break
        at = fdp.ConsumeIntInRange(0, len(buf) - 1)
        match fdp.ConsumeIntInRange(0, 3):
            case 0:
                buf[at] ^= 1 << fdp.ConsumeIntInRange(0, 7)
            case 1:
                buf[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 9))
            case 2:
                del buf[at : at + fdp.ConsumeIntInRange(1, 8)]
            case _:
                del buf[at:]
    return bytes(buf)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    decoder = _DECODERS[fdp.ConsumeIntInRange(0, len(_DECODERS) - 1)]
    limits = _LIMITS[fdp.ConsumeIntInRange(0, len(_LIMITS) - 1)]
    if fdp.ConsumeBool():
        payload = _edit(_SAMPLES[fdp.ConsumeIntInRange(0, len(_SAMPLES) - 1)], fdp)
    else:
        payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    with contextlib.suppress(ProtocolError):  # the one correct way to refuse input
        decoder(payload, limits)


def main() -> None:
    if not any(arg.startswith("-max_total_time=") for arg in sys.argv[1:]):
        sys.argv.append("-max_total_time=60")  # never run unbounded by accident
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
