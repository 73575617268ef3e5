"""The DuckDB yardstick for `tickwatch run`: the alerts of both modes as SQL over the NDJSON file.

Usage: python duckdb_yardstick.py INPUT DATABASE --threads N

With DuckDB limited to N threads, into a new DuckDB database DATABASE:
  level  CREATE TABLE level_alerts AS every tick above 150 or below 50;
  cross  CREATE TABLE cross_alerts AS every tick that enters a zone (high above 150, low below
         50): its zone is not normal and differs from the symbol's previous tick's zone, by
         `lag(zone) OVER (PARTITION BY symbol ORDER BY timestamp)`; a symbol's first tick that is
         already high or low enters.
Each reads INPUT itself (`read_json`, the columns given, so nothing is sampled) and is timed with
time.perf_counter from its statement to the end of a CHECKPOINT (the table on disk). Prints one
JSON object: {"duckdb": VERSION, "threads": N, "level": {"alerts": N, "seconds": S},
"cross": {...}}. Needs the duckdb package (scripts/setup-test-env installs it, pinned, into
.venv/duckdb). DATABASE must not exist yet.
"""

import argparse
import json
import os
import sys
import time

import duckdb


def ticks(input_path):
    """The ticks of INPUT as a table function; the path goes in as an SQL string literal."""
    literal = "'" + input_path.replace("'", "''") + "'"
    return f"""read_json({literal}, format = 'newline_delimited',
        columns = {{symbol: 'VARCHAR', price: 'DOUBLE', timestamp: 'TIMESTAMPTZ'}})"""


def level(ticks):
    """Every tick beyond a threshold alerts."""
    return f"""
CREATE TABLE level_alerts AS
SELECT symbol, timestamp,
       CASE WHEN price > 150 THEN 'high' ELSE 'low' END AS rule,
       price,
       CASE WHEN price > 150 THEN 150.0 ELSE 50.0 END::DOUBLE AS threshold
FROM {ticks}
WHERE price > 150 OR price < 50
"""


def cross(ticks):
    """Only a tick that enters a zone alerts."""
    return f"""
CREATE TABLE cross_alerts AS
WITH zoned AS (
    SELECT symbol, timestamp, price,
           CASE WHEN price > 150 THEN 'high' WHEN price < 50 THEN 'low' ELSE 'normal' END AS zone
    FROM {ticks}
), entered AS (
    SELECT *, lag(zone) OVER (PARTITION BY symbol ORDER BY timestamp) AS previous
    FROM zoned
)
SELECT symbol, timestamp, zone AS rule, price,
       CASE zone WHEN 'high' THEN 150.0 ELSE 50.0 END::DOUBLE AS threshold
FROM entered
WHERE zone <> 'normal' AND zone IS DISTINCT FROM previous
"""


def timed(connection, statement, table):
    """Runs one CREATE TABLE ... AS and checkpoints it; its alert count and seconds."""
    started = time.perf_counter()
    connection.execute(statement)
    connection.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    (alerts,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    return {"alerts": alerts, "seconds": round(seconds, 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="NDJSON ticks")
    parser.add_argument("database", help="a new DuckDB database file")
    parser.add_argument("--threads", type=int, required=True, help="DuckDB's threads")
    args = parser.parse_args()
    if os.path.exists(args.database):
        sys.exit(f"duckdb_yardstick.py: {args.database} exists; remove it or name a new file")
    connection = duckdb.connect(args.database)
    connection.execute(f"SET threads = {args.threads}")
    result = {
        "duckdb": duckdb.__version__,
        "threads": args.threads,
        "level": timed(connection, level(ticks(args.input)), "level_alerts"),
        "cross": timed(connection, cross(ticks(args.input)), "cross_alerts"),
    }
    connection.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
