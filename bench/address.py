"""Address-matching benchmark: index build time, match throughput and accuracy at N addresses.

`uv run python -m bench.address --n 1000000` makes N standard addresses as the generator
does (synthetic.world), types each once as an applicant would (synthetic.addresses), then
times jobs.address: AddressIndex.build over the N standard addresses and match_frame over
the N typed texts (division code as the hint, one pandas frame, one core). Prints a
Markdown row for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from datetime import date

import pandas as pd

from bench.startup import machine_line
from jobs.address import AddressIndex, StandardAddress, match_frame
from synthetic.addresses import applicant_address
from synthetic.world import Chunk, ChunkBuilder, extract_date


def _province(n: int, seed: int) -> tuple[list[StandardAddress], pd.DataFrame]:
    """N standard addresses and, for each, the text an applicant typed for it."""
    builder = ChunkBuilder(seed, 0, 0, {})
    chunk = Chunk(0, 1, extract_date(1), {p.code: p for p in builder.places})
    rng = random.Random(f"{seed}:bench-address")
    places = rng.choices(builder.places, builder.place_weights, k=n)
    standard, typed = [], []
    for place in places:
        address = builder._address(chunk, place, rng)  # the generator's own doorplates
        standard.append(
            StandardAddress(
                address.address_id,
                address.full_address,
                address.division_code,
                address.road,
                address.house_number,
            )
        )
        variant_rng = random.Random(f"{seed}:{address.address_id}")
        typed.append(
            (address.address_id, applicant_address(address, place, variant_rng), place.code)
        )
    return standard, pd.DataFrame(typed, columns=["truth", "address", "division_code"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="standard addresses")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    standard, registers = _province(args.n, args.seed)

    began = time.monotonic()
    index = AddressIndex.build(standard)
    build_seconds = time.monotonic() - began
    began = time.monotonic()
    matched = match_frame(registers, index, hint_column="division_code")
    match_seconds = time.monotonic() - began
    # The worst case: only texts that differ from the standard one (no exact-text shortcut).
    full_text = {a.address_id: a.full_address for a in standard}
    variants = registers[registers["address"] != registers["truth"].map(full_text)]
    began = time.monotonic()
    match_frame(variants, index, hint_column="division_code")
    variant_seconds = time.monotonic() - began

    found = matched["address_id"].notna()
    right = matched["address_id"] == matched["truth"]
    wrong = int((found & ~right).sum())
    # A doorplate the generator gave to two addresses cannot be told apart by any matcher.
    doorplates = Counter((a.division_code, a.road, a.house_number) for a in standard)
    shared = {
        a.address_id for a in standard if doorplates[a.division_code, a.road, a.house_number] > 1
    }
    unique = ~matched["truth"].isin(shared)
    total = len(matched)
    print(f"Machine: {machine_line()}; date {date.today().isoformat()}")
    print(
        "| addresses | index build s | match s | addresses/s | variants only, /s | accuracy "
        "| accuracy, unique doorplates | wrong | unmatched |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {total:,} | {build_seconds:.1f} | {match_seconds:.1f} | "
        f"{total / match_seconds:,.0f} | {len(variants) / variant_seconds:,.0f} | "
        f"{right.mean():.2%} | {right[unique].mean():.2%} | {wrong:,} | "
        f"{int((~found).sum()):,} |"
    )
    print("Methods:", dict(Counter(matched["match_method"])))
    print("Unmatched by reason:", dict(Counter(matched.loc[~found, "match_reason"])))


if __name__ == "__main__":
    main()
