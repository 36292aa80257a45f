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
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from protocol import (
        ForkProof,
        ProtocolError,
        decode_entry,
        node_id,
        parse_node_id,
    )
    from protocol.channel import Channel
    from protocol.encoding import pack, unpack
    from protocol.limits import Limits
    from protocol.messages import (
        decode_message,
        encode_message,
    )
    from tests import protocol_samples as samples

_KEY = samples.KEY
_MESSAGES = samples.MESSAGES
_ENTRIES = samples.ENTRIES
_PAYLOADS = [msgpack.unpackb(raw)[0] for raw in _ENTRIES]
_SAMPLES = [*_MESSAGES, *_ENTRIES, *_PAYLOADS, *samples.PROOFS, *samples.FRAMES]
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


def _frame(data: bytes, limits: Limits) -> None:
    # Sealed with the right key, so the flag byte and the bounded inflate behind the tag are
    # explored, not just the tag failing.
    sealed = ChaCha20Poly1305(samples.FRAME_KEY).encrypt(bytes(12), data, None)
    if len(Channel(samples.FRAME_KEY, samples.FRAME_KEY, limits=limits).open(sealed)) > (
        limits.max_message_bytes
    ):
        raise AssertionError("a frame inflated past the message limit")


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
    _frame,
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
