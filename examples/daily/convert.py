#!/usr/bin/env python3
"""Regenerates us-stocks-2007-2009.csv from the bokeh-sampledata package (standard library only).

    pip download --no-deps --only-binary=:all: -d /tmp/bsd bokeh-sampledata==2026.1
    python3 examples/daily/convert.py /tmp/bsd/bokeh_sampledata-2026.1-py3-none-any.whl

The argument is the wheel, or the gzip file `bokeh_sampledata/_data/stocks.csv.gz` taken out of
it. The output goes next to this script unless a second argument names another file. See
README.md here for the data's provenance and licence.
"""

import csv
import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

# The file inside the wheel, and its SHA-256 as bokeh-sampledata 2026.1 records it in
# bokeh_sampledata-2026.1.dist-info/licenses/licenses/datasets.json (module "stocks").
MEMBER = "bokeh_sampledata/_data/stocks.csv.gz"
MEMBER_SHA256 = "5abadf99b2d394f920120a27de6f0df129859d71d4cfb0bf661bcc99446ab1fd"

SYMBOLS = ("AAPL", "GOOG", "IBM", "MSFT")
FIRST_DATE = "2007-01-01"
LAST_DATE = "2009-12-31"
OUTPUT = Path(__file__).with_name("us-stocks-2007-2009.csv")


def read_member(path: Path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(MEMBER)
    return path.read_bytes()


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    packed = read_member(Path(sys.argv[1]))
    digest = hashlib.sha256(packed).hexdigest()
    if digest != MEMBER_SHA256:
        print(f"{MEMBER}: SHA-256 {digest}, expected {MEMBER_SHA256}", file=sys.stderr)
        return 1
    output = Path(sys.argv[2]) if len(sys.argv) == 3 else OUTPUT

    text = gzip.decompress(packed).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = [
        (row["Ticker"], row["Date"], row["Close"])
        for row in reader
        if row["Ticker"] in SYMBOLS and FIRST_DATE <= row["Date"] <= LAST_DATE
    ]
    # ISO dates sort as text: by symbol, then day.
    rows.sort(key=lambda row: (row[0], row[1]))
    for (symbol, day, _), (next_symbol, next_day, _) in zip(rows, rows[1:]):
        if symbol == next_symbol and day >= next_day:
            raise SystemExit(f"{symbol}: {day} is not before {next_day}")

    with output.open("w", encoding="utf-8", newline="") as out:
        out.write("symbol,price,timestamp\n")
        for symbol, day, close in rows:
            # The close exactly as the source writes it; the tick at 00:00 UTC of the trading day.
            out.write(f"{symbol},{close},{day}T00:00:00Z\n")
    print(f"{output}: {len(rows)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
