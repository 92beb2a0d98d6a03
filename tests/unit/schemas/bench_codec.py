"""Micro-benchmark of the codec (not collected by pytest).

    python -m tests.unit.schemas.bench_codec

Prints µs per record for DunningProposed: `encode` (Decimal/date) vs `encode_raw`
(unscaled ints/day numbers), and the two decoders, best of five runs.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from functools import partial

from schemas.codec import Codec

from .samples import sample, to_raw


def best_us(fn: Callable[[], object], number: int = 20_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    two_items = sample("DunningProposed")
    one_item = sample("DunningProposed")
    one_item["items"] = one_item["items"][:1]
    one_item["level_changes"] = one_item["left_out"] = []
    for fmt in ("single-object", "confluent"):
        codec = Codec(fmt)
        for label, record in (("2 items", two_items), ("1 item", one_item)):
            raw = to_raw(record)
            data = codec.encode("DunningProposed", record)
            assert codec.encode_raw("DunningProposed", raw) == data
            enc = best_us(partial(codec.encode, "DunningProposed", record))
            enc_raw = best_us(partial(codec.encode_raw, "DunningProposed", raw))
            dec = best_us(partial(codec.decode, data))
            dec_raw = best_us(partial(codec.decode_raw, data))
            print(
                f"{fmt:13s} DunningProposed {label} ({len(data)} B): encode {enc:5.1f} µs, "
                f"encode_raw {enc_raw:5.1f} µs, decode {dec:5.1f} µs, decode_raw {dec_raw:5.1f} µs"
            )


if __name__ == "__main__":
    main()
