"""The Python yardstick for `tickwatch run --mode level`: the simplest reasonable equivalent.

Usage: python3 level.py INPUT DATABASE NOTIFICATIONS

Reads the NDJSON ticks in INPUT with one `json.loads` per line, checks each the way tickwatch does
in essence (below; a tick that fails is counted as rejected and skipped), raises an alert for every
tick above 150 or below 50, stores the alerts in a new SQLite database DATABASE (one `executemany`
in one transaction) and then writes each one as a JSON line to NOTIFICATIONS. Prints one JSON
object: {"alerts": N, "rejected": N, "seconds": S, "python": "3.x.y"}. Standard library only.
DATABASE and NOTIFICATIONS must not exist yet: the run is always into fresh files.
"""

import json
import math
import os
import re
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone

# The two default rules, in level mode: every tick above HIGH or below LOW alerts.
HIGH, LOW = 150.0, 50.0

# tickwatch's limits (crates/core/src/tick): symbol, price, volume, timestamp.
SYMBOL = re.compile(r"[A-Za-z0-9._:/-]{1,32}")
PRICE_MIN, PRICE_MAX = 1e-12, 1e12
VOLUME_MAX = 1e15
# RFC 3339 with an offset; `datetime.fromisoformat` alone would also take dates without a time.
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TIMESTAMP_MS_END = 4_102_444_800_000  # 2100-01-01T00:00:00Z
ONE_MS = timedelta(milliseconds=1)


def is_number(value):
    # JSON true and false load as bool, a subclass of int: they are not numbers here.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def epoch_ms(value):
    """Epoch milliseconds of a valid timestamp (RFC 3339 text or integer epoch ms), else None."""
    if isinstance(value, str):
        if not RFC3339.fullmatch(value):
            return None
        try:
            # Python 3.11 reads `Z` and up to 9 fractional digits, but not a lowercase t or z.
            at = datetime.fromisoformat(value.upper())
        except ValueError:  # a day or an hour that does not exist
            return None
        ms = (at - EPOCH) // ONE_MS
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        return None
    return ms if 0 <= ms < TIMESTAMP_MS_END else None


def check(tick):
    """(symbol, price, epoch ms) of a valid tick, else None."""
    if not isinstance(tick, dict):
        return None
    symbol, price = tick.get("symbol"), tick.get("price")
    if not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
        return None
    if not is_number(price) or not math.isfinite(price):
        return None
    if not PRICE_MIN <= price < PRICE_MAX:
        return None
    volume = tick.get("volume", 0)
    if not is_number(volume) or not 0 <= volume <= VOLUME_MAX:  # NaN fails both comparisons
        return None
    ms = epoch_ms(tick.get("timestamp"))
    if ms is None:
        return None
    return symbol, price, ms


def main(input_path, database_path, notifications_path):
    for path in (database_path, notifications_path):
        if os.path.exists(path):
            sys.exit(f"level.py: {path} exists; remove it or name a new file")
    started = time.perf_counter()
    alerts, rejected = [], 0
    # A byte that is not UTF-8 becomes U+FFFD: that tick is checked, the run goes on.
    with open(input_path, encoding="utf-8", errors="replace") as ticks:
        for line in ticks:
            if not line.strip():
                continue
            try:
                tick = check(json.loads(line))
            except ValueError:  # not JSON
                tick = None
            if tick is None:
                rejected += 1
                continue
            symbol, price, ms = tick
            if price > HIGH:
                alerts.append((symbol, ms, "high", price, HIGH))
            elif price < LOW:
                alerts.append((symbol, ms, "low", price, LOW))

    database = sqlite3.connect(database_path)
    database.execute(
        "CREATE TABLE alerts (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL,"
        " rule TEXT NOT NULL, price REAL NOT NULL, threshold REAL NOT NULL)"
    )
    with database:  # one transaction, committed at the end of the block
        database.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?)", alerts)
    database.close()

    with open(notifications_path, "w", encoding="utf-8") as notifications:
        for symbol, ms, rule, price, threshold in alerts:
            notifications.write(
                json.dumps(
                    {"rule": rule, "symbol": symbol, "price": price,
                     "threshold": threshold, "timestamp": ms}
                )
                + "\n"
            )
    seconds = time.perf_counter() - started
    print(json.dumps({
        "alerts": len(alerts),
        "rejected": rejected,
        "seconds": round(seconds, 4),
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
