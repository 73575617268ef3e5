//! Tick sources for the local mode: NDJSON or CSV, from a file or stdin, read in batches.
//!
//! Lines are read into one reusable buffer per batch and decoded straight from it, so reading
//! costs no allocation per tick. A line longer than the tick body limit is skipped to its end
//! without being buffered, and reported as too large.
//!
//! A UTF-8 byte order mark at the start of the input (spreadsheet programs write one) is skipped.
//! Messages quote input with its control characters escaped, never raw.
//!
//! Input is read ahead on a thread of its own ([`Prefetch`]). A batch ends at [`BATCH_TICKS_MAX`]
//! ticks, or earlier when no more input has arrived: a live feed on stdin
//! (`tail -f feed | tickwatch run`) gets its alerts as ticks arrive, while a file or a fast pipe
//! fills whole batches. [`TickReader::decode_ahead`] moves the line splitting and decoding to a
//! thread of their own too, so that the next batch is decoded while this one is processed.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::Duration;

use crate::prefetch::{PREFETCH_CHUNK_BYTES, Prefetch};

use tickwatch_core::tick::{TICK_BODY_BYTES_MAX, quote};
use tickwatch_core::{Tick, TickError};

/// Ticks per batch handed to the pipeline: large enough to amortise each store transaction and
/// each symbol's state write (one per symbol per batch), small enough that a batch's ticks,
/// alerts and outcomes stay in the CPU's caches while it goes through the threads. Measured
/// (BENCHMARKS.md section 14): against 65,536, 32,768 takes 10-15 % less time on an alert-heavy
/// file and on a million symbols, and the same on 5,000 symbols, where 24,576 took 5-17 % more
/// and 16,384 30 % more.
pub const BATCH_TICKS_MAX: usize = 32_768;

/// Batches [`DecodeAhead`] may hold decoded and not yet taken (so at most this many times
/// [`BATCH_TICKS_MAX`] ticks of read-ahead, a few megabytes each).
pub const BATCHES_AHEAD_MAX: usize = 0;

/// Column names quoted back in a CSV header error; a longer header is cut.
const HEADER_NAMES_SHOWN_MAX: usize = 16;

/// The UTF-8 byte order mark, skipped at the start of the input.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// The input format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON tick per line.
    Ndjson,
    /// A header line naming `symbol`, `price` and `timestamp`, and optionally `volume` (any
    /// order, other columns ignored), then one tick per line. An empty `volume` cell is zero.
    Csv,
}

/// A source that cannot be read at all (as opposed to a bad line, which is a rejected tick).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading failed.
    #[error("reading input: {0}")]
    Io(#[from] io::Error),
    /// The CSV header is missing a column. The text lists the header's names, quoted.
    #[error("CSV header (line 1) must name the columns symbol, price and timestamp; it has: {0}")]
    CsvHeader(String),
    /// The CSV header names a column twice; which one holds the value would be a guess.
    #[error("CSV header (line 1) names the column {0} more than once")]
    CsvDuplicateColumn(String),
}

/// One line's worth of input: its 1-based line number and its tick, or why it is not one.
pub type NumberedTick = (u64, Result<Tick, TickError>);

/// Reads ticks in batches of at most [`BATCH_TICKS_MAX`].
pub struct TickReader {
    input: Prefetch,
    format: Format,
    csv_columns: Option<CsvColumns>,
    line_number: u64,
    bytes_read: u64,
    line: Vec<u8>,
    done: bool,
}

#[derive(Clone, Copy, Debug)]
struct CsvColumns {
    symbol: usize,
    price: usize,
    timestamp: usize,
    /// The optional `volume` column.
    volume: Option<usize>,
    count: usize,
}

/// What reading one line found.
enum Line {
    /// A line (without its terminator) is in the buffer.
    Text,
    /// The line was longer than the limit and was skipped; its length in bytes.
    TooLong(usize),
    /// End of input.
    End,
}

impl TickReader {
    /// Reads `format` from `input` (read ahead on a thread here; pass the raw file or stdin).
    pub fn new<R: Read + Send + 'static>(input: R, format: Format) -> io::Result<TickReader> {
        TickReader::with_chunks(input, format, PREFETCH_CHUNK_BYTES)
    }

    /// Like [`TickReader::new`], reading `chunk_bytes` at a time.
    pub fn with_chunks<R: Read + Send + 'static>(
        input: R,
        format: Format,
        chunk_bytes: usize,
    ) -> io::Result<TickReader> {
        Ok(TickReader {
            input: Prefetch::spawn(input, chunk_bytes)?,
            format,
            csv_columns: None,
            line_number: 0,
            bytes_read: 0,
            line: Vec::with_capacity(256),
            done: false,
        })
    }

    /// Bytes consumed so far (for progress display).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next batch, or `None` at end of input. Blank lines are skipped.
    pub fn next_batch(&mut self) -> Result<Option<Vec<NumberedTick>>, SourceError> {
        if self.done {
            return Ok(None);
        }
        if self.format == Format::Csv && self.csv_columns.is_none() {
            match self.read_line()? {
                Line::End => {
                    self.done = true;
                    return Ok(None);
                }
                Line::TooLong(_) => {
                    return Err(SourceError::CsvHeader(
                        "(a line too long to be a header)".into(),
                    ));
                }
                Line::Text => self.csv_columns = Some(parse_header(&self.line)?),
            }
        }
        let mut batch = Vec::new();
        while batch.len() < BATCH_TICKS_MAX {
            // Reading past what has arrived would wait (a live feed): hand over what we have.
            if !batch.is_empty() && !self.input.ready() {
                break;
            }
            let decoded = match self.read_line()? {
                Line::End => {
                    self.done = true;
                    break;
                }
                Line::TooLong(bytes) => Err(TickError::TooLarge { bytes }),
                Line::Text if self.line.iter().all(u8::is_ascii_whitespace) => continue,
                Line::Text => match (self.format, self.csv_columns) {
                    (Format::Csv, Some(columns)) => decode_csv(&self.line, columns),
                    _ => Tick::decode(&self.line),
                },
            };
            batch.push((self.line_number, decoded));
        }
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }

    /// Reads one line into `self.line`, without the `\n` (or `\r\n`).
    fn read_line(&mut self) -> Result<Line, SourceError> {
        self.line.clear();
        let mut skipped = 0usize;
        let mut any = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(buffer) => buffer,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if available.is_empty() {
                break;
            }
            any = true;
            let (chunk, found_end) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            // Keep at most the limit (plus one byte to detect the overflow, plus a '\r').
            if skipped == 0 && self.line.len() + chunk.len() <= TICK_BODY_BYTES_MAX + 1 {
                self.line.extend_from_slice(chunk);
            } else {
                skipped += chunk.len() + std::mem::take(&mut self.line).len();
            }
            let consumed = found_end.unwrap_or(available.len());
            self.input.consume(consumed);
            self.bytes_read += consumed as u64;
            if found_end.is_some() {
                break;
            }
        }
        if !any {
            return Ok(Line::End);
        }
        self.line_number += 1;
        if skipped > 0 {
            return Ok(Line::TooLong(skipped));
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line_number == 1 && self.line.starts_with(UTF8_BOM) {
            self.line.drain(..UTF8_BOM.len());
        }
        if self.line.len() > TICK_BODY_BYTES_MAX {
            return Ok(Line::TooLong(self.line.len()));
        }
        Ok(Line::Text)
    }
}

impl TickReader {
    /// Moves this reader to a thread of its own that decodes batches ahead: the caller processes
    /// one batch while the next is read and decoded on the other core. The batches are the ones
    /// [`TickReader::next_batch`] gives, in order (a live feed's batches still end with what has
    /// arrived). At most [`BATCHES_AHEAD_MAX`] wait.
    pub fn decode_ahead(mut self) -> io::Result<DecodeAhead> {
        let (sender, batches) = sync_channel(BATCHES_AHEAD_MAX);
        std::thread::Builder::new()
            .name("tickwatch-decoder".into())
            .spawn(move || {
                loop {
                    let batch = self.next_batch();
                    let last = !matches!(batch, Ok(Some(_)));
                    // A receiver that is gone stopped reading: so do we.
                    if sender.send((batch, self.bytes_read)).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(DecodeAhead {
            batches,
            bytes_read: 0,
            done: false,
        })
    }
}

/// What a batch from the decoding thread comes with: the batch (or the end, or why the input
/// cannot be read), and the bytes consumed so far.
type Decoded = (Result<Option<Vec<NumberedTick>>, SourceError>, u64);

/// What [`DecodeAhead::next_batch_within`] found.
#[derive(Debug)]
pub enum Next {
    /// A batch.
    Batch(Vec<NumberedTick>),
    /// Nothing yet.
    Waiting,
    /// The end of the input.
    End,
}

/// Batches decoded ahead by [`TickReader::decode_ahead`].
pub struct DecodeAhead {
    batches: Receiver<Decoded>,
    bytes_read: u64,
    done: bool,
}

impl DecodeAhead {
    /// The next batch, or `None` at end of input; as [`TickReader::next_batch`].
    pub fn next_batch(&mut self) -> Result<Option<Vec<NumberedTick>>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let received = self.batches.recv();
        self.take(received.map_err(|_| ()))
    }

    /// As [`DecodeAhead::next_batch`], waiting at most `timeout`: `Ok(Waiting)` when no batch
    /// came by then (a quiet live feed), so the caller can do something else and ask again.
    pub fn next_batch_within(&mut self, timeout: Duration) -> Result<Next, SourceError> {
        if self.done {
            return Ok(Next::End);
        }
        let received = match self.batches.recv_timeout(timeout) {
            Ok(decoded) => Ok(decoded),
            Err(RecvTimeoutError::Timeout) => return Ok(Next::Waiting),
            Err(RecvTimeoutError::Disconnected) => Err(()),
        };
        Ok(match self.take(received)? {
            Some(batch) => Next::Batch(batch),
            None => Next::End,
        })
    }

    fn take(
        &mut self,
        received: Result<Decoded, ()>,
    ) -> Result<Option<Vec<NumberedTick>>, SourceError> {
        match received {
            Ok((batch, bytes_read)) => {
                self.bytes_read = bytes_read;
                self.done = !matches!(batch, Ok(Some(_)));
                batch
            }
            Err(()) => {
                self.done = true;
                Err(SourceError::Io(io::Error::other(
                    "the decoding thread stopped before the end of the input",
                )))
            }
        }
    }

    /// Bytes consumed by the batches taken so far (for progress display).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
}

fn parse_header(line: &[u8]) -> Result<CsvColumns, SourceError> {
    let text = String::from_utf8_lossy(line);
    let Some(fields) = split_csv(&text) else {
        return Err(SourceError::CsvHeader(format!(
            "{} (a quoted name is never closed)",
            quote(&text)
        )));
    };
    let names: Vec<String> = fields
        .into_iter()
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    // Any repeated name is refused, not only ours, as NDJSON refuses any repeated key; unnamed
    // columns (`a,b,,`) are left alone.
    for (i, name) in names.iter().enumerate() {
        if !name.is_empty() && names[..i].contains(name) {
            return Err(SourceError::CsvDuplicateColumn(quote(name)));
        }
    }
    let find = |name: &str| names.iter().position(|n| n == name);
    match (find("symbol"), find("price"), find("timestamp")) {
        (Some(symbol), Some(price), Some(timestamp)) => Ok(CsvColumns {
            symbol,
            price,
            timestamp,
            volume: find("volume"),
            count: names.len(),
        }),
        _ => {
            let mut shown: Vec<String> = names
                .iter()
                .take(HEADER_NAMES_SHOWN_MAX)
                .map(|name| quote(name))
                .collect();
            if names.len() > HEADER_NAMES_SHOWN_MAX {
                shown.push(format!("and {} more", names.len() - HEADER_NAMES_SHOWN_MAX));
            }
            Err(SourceError::CsvHeader(shown.join(", ")))
        }
    }
}

fn decode_csv(line: &[u8], columns: CsvColumns) -> Result<Tick, TickError> {
    let text = std::str::from_utf8(line).map_err(|e| TickError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let fields = split_csv(text).ok_or_else(|| TickError::CsvRow {
        detail: "row has a quoted field that is never closed".into(),
    })?;
    if fields.len() != columns.count {
        return Err(TickError::CsvRow {
            detail: format!(
                "row has {} fields, the header has {}",
                fields.len(),
                columns.count
            ),
        });
    }
    Tick::from_csv_fields(
        fields[columns.symbol].trim(),
        fields[columns.price].trim(),
        fields[columns.timestamp].trim(),
        columns.volume.map(|i| fields[i].trim()),
    )
}

/// Splits one CSV line (RFC 4180 quoting, no embedded newlines). `None` if a quote is left open.
fn split_csv(line: &str) -> Option<Vec<std::borrow::Cow<'_, str>>> {
    use std::borrow::Cow;
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    None => return None,
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            value.push('"');
                            chars.next();
                        } else {
                            break i + 1;
                        }
                    }
                    Some((_, c)) => value.push(c),
                }
            };
            fields.push(Cow::Owned(value));
            rest = &quoted[end..];
            match rest.find(',') {
                Some(i) => rest = &rest[i + 1..],
                None => return Some(fields),
            }
        } else {
            match rest.find(',') {
                Some(i) => {
                    fields.push(Cow::Borrowed(&rest[..i]));
                    rest = &rest[i + 1..];
                }
                None => {
                    fields.push(Cow::Borrowed(rest));
                    return Some(fields);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(
        input: &str,
        format: Format,
    ) -> Result<Vec<(u64, Result<String, String>)>, SourceError> {
        // Tiny chunks: lines and multi-byte characters straddle them.
        let bytes = io::Cursor::new(input.as_bytes().to_vec());
        let mut reader = TickReader::with_chunks(bytes, format, 16).expect("reader thread");
        let mut out = Vec::new();
        while let Some(batch) = reader.next_batch()? {
            for (line, tick) in batch {
                out.push((
                    line,
                    tick.map(|t| format!("{}@{}={}", t.symbol, t.at.epoch_ms(), t.price))
                        .map_err(|e| e.code().to_owned()),
                ));
            }
        }
        Ok(out)
    }

    #[test]
    fn ndjson_lines_keep_their_numbers() {
        let input = "{\"symbol\":\"A\",\"price\":1,\"timestamp\":5}\n\n  \n{\"symbol\":\"B\",\"price\":2,\"timestamp\":6}\r\nnope\n{\"symbol\":\"C\",\"price\":3,\"timestamp\":7}";
        let out = read_all(input, Format::Ndjson).expect("readable");
        assert_eq!(
            out,
            [
                (1, Ok("A@5=1".into())),
                (4, Ok("B@6=2".into())),
                (5, Err("body.malformed".into())),
                (6, Ok("C@7=3".into())),
            ]
        );
    }

    #[test]
    fn overlong_lines_are_rejected_without_buffering_them() {
        let long = format!(
            "{{\"symbol\":\"A\",\"price\":1,\"timestamp\":5,\"pad\":\"{}\"}}",
            "x".repeat(TICK_BODY_BYTES_MAX * 3)
        );
        let input = format!("{long}\n{{\"symbol\":\"B\",\"price\":2,\"timestamp\":6}}\n");
        let out = read_all(&input, Format::Ndjson).expect("readable");
        assert_eq!(
            out,
            [(1, Err("body.too_large".into())), (2, Ok("B@6=2".into()))]
        );
    }

    #[test]
    fn batches_are_bounded_and_a_file_fills_them() {
        let line = "{\"symbol\":\"A\",\"price\":1,\"timestamp\":5}\n";
        let input = line.repeat(BATCH_TICKS_MAX * 2 + 3);
        let mut reader =
            TickReader::new(io::Cursor::new(input.clone().into_bytes()), Format::Ndjson)
                .expect("reader thread");
        let mut sizes = Vec::new();
        while let Some(batch) = reader.next_batch().expect("readable") {
            sizes.push(batch.len());
        }
        assert!(sizes.iter().all(|&n| n <= BATCH_TICKS_MAX), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), BATCH_TICKS_MAX * 2 + 3);
        assert_eq!(reader.bytes_read(), input.len() as u64);
    }

    #[test]
    fn a_batch_ends_when_no_more_input_has_arrived() {
        // A live feed: the test hands out one line at a time, and only after the previous batch
        // came back, so a batch that waited for the next line would never return.
        use crate::prefetch::Gate;
        let (feed, gate) = std::sync::mpsc::channel();
        let mut reader = TickReader::new(Gate(gate), Format::Ndjson).expect("reader thread");
        for ms in 1..=3 {
            let line = format!("{{\"symbol\":\"A\",\"price\":1,\"timestamp\":{ms}}}\n");
            feed.send(line.into_bytes()).expect("send");
            let batch = reader.next_batch().expect("readable").expect("a batch");
            assert_eq!(batch.len(), 1, "tick {ms} came back on its own");
        }
        drop(feed);
        assert!(reader.next_batch().expect("readable").is_none());
    }

    #[test]
    fn decoding_ahead_gives_the_same_batches_in_order() {
        let line = |ms: usize| format!("{{\"symbol\":\"A\",\"price\":1,\"timestamp\":{ms}}}\n");
        let mut input: String = (1..=BATCH_TICKS_MAX * 2 + 3).map(line).collect();
        input.push_str("nope\n");
        let batches = |mut next: Box<dyn FnMut() -> Option<Vec<NumberedTick>>>| {
            let mut all = Vec::new();
            while let Some(batch) = next() {
                all.push(batch);
            }
            all
        };
        let mut direct =
            TickReader::new(io::Cursor::new(input.clone().into_bytes()), Format::Ndjson)
                .expect("reader thread");
        let expected = batches(Box::new(move || direct.next_batch().expect("readable")));
        let mut ahead =
            TickReader::new(io::Cursor::new(input.clone().into_bytes()), Format::Ndjson)
                .expect("reader thread")
                .decode_ahead()
                .expect("decoder thread");
        let mut got = Vec::new();
        while let Some(batch) = ahead.next_batch().expect("readable") {
            got.push(batch);
        }
        assert_eq!(got, expected);
        assert_eq!(ahead.bytes_read(), input.len() as u64);
        assert!(ahead.next_batch().expect("the end stays the end").is_none());
    }

    /// A live feed (lines go in through the sender when the test says) decoded ahead.
    fn live_decoded_feed() -> (std::sync::mpsc::Sender<Vec<u8>>, DecodeAhead) {
        let (feed, gate) = std::sync::mpsc::channel();
        let reader = TickReader::new(crate::prefetch::Gate(gate), Format::Ndjson)
            .expect("reader thread")
            .decode_ahead()
            .expect("decoder thread");
        (feed, reader)
    }

    #[test]
    fn decoding_ahead_keeps_a_live_feed_live_and_passes_errors_on() {
        let (feed, mut reader) = live_decoded_feed();
        for ms in 1..=3 {
            let line = format!("{{\"symbol\":\"A\",\"price\":1,\"timestamp\":{ms}}}\n");
            feed.send(line.into_bytes()).expect("send");
            let batch = reader.next_batch().expect("readable").expect("a batch");
            assert_eq!(batch.len(), 1, "tick {ms} came back on its own");
        }
        drop(feed);
        assert!(reader.next_batch().expect("readable").is_none());

        let mut bad_header = TickReader::new(io::Cursor::new(b"a,b\n1,2\n".to_vec()), Format::Csv)
            .expect("reader thread")
            .decode_ahead()
            .expect("decoder thread");
        assert!(matches!(
            bad_header.next_batch(),
            Err(SourceError::CsvHeader(_))
        ));
        assert!(
            bad_header
                .next_batch()
                .expect("after the error, the end")
                .is_none()
        );
    }

    #[test]
    fn a_bounded_wait_on_a_quiet_feed_says_waiting_and_loses_nothing() {
        let (feed, mut reader) = live_decoded_feed();
        let wait = Duration::from_millis(20);
        assert!(matches!(reader.next_batch_within(wait), Ok(Next::Waiting)));
        feed.send(b"{\"symbol\":\"A\",\"price\":1,\"timestamp\":1}\n".to_vec())
            .expect("send");
        // The tick comes within a long wait, whenever the decoder hands it over.
        match reader.next_batch_within(Duration::from_secs(30)) {
            Ok(Next::Batch(batch)) => assert_eq!(batch.len(), 1),
            other => panic!("expected the batch, got {other:?}"),
        }
        assert!(matches!(reader.next_batch_within(wait), Ok(Next::Waiting)));
        drop(feed);
        assert!(matches!(
            reader.next_batch_within(Duration::from_secs(30)),
            Ok(Next::End)
        ));
        assert!(matches!(reader.next_batch_within(wait), Ok(Next::End)));
    }

    #[test]
    fn csv_columns_follow_the_header() {
        let input = "timestamp, Symbol ,price,venue\n2026-11-26T14:30:00Z,AAPL,151.25,XNAS\n5,\"B,1\",2,x\n5,\"B\"\"\",2,x\n7,C,NaN,x\n8,D,2\n9,E,3,\"open\n";
        let out = read_all(input, Format::Csv).expect("readable");
        assert_eq!(
            out,
            [
                (2, Ok("AAPL@1795703400000=151.25".into())),
                (3, Err("symbol.invalid".into())),
                (4, Err("symbol.invalid".into())),
                (5, Err("price.invalid".into())),
                (6, Err("row.malformed".into())),
                (7, Err("row.malformed".into())),
            ]
        );
    }

    /// Every message of one CSV or NDJSON input, by line.
    fn messages(input: &[u8], format: Format) -> Result<Vec<(u64, String)>, String> {
        let bytes = io::Cursor::new(input.to_vec());
        let mut reader = TickReader::with_chunks(bytes, format, 16).expect("reader thread");
        let mut out = Vec::new();
        while let Some(batch) = reader.next_batch().map_err(|e| e.to_string())? {
            for (line, tick) in batch {
                out.push((
                    line,
                    match tick {
                        Ok(t) => format!("{}@{}={}", t.symbol, t.at.epoch_ms(), t.price),
                        Err(e) => e.to_string(),
                    },
                ));
            }
        }
        Ok(out)
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let cases: &[(&[u8], Format, &[(u64, &str)])] = &[
            (
                b"\xef\xbb\xbfsymbol,price,timestamp\nAAPL,151,5\n",
                Format::Csv,
                &[(2, "AAPL@5=151")],
            ),
            (
                b"\xef\xbb\xbf{\"symbol\":\"A\",\"price\":1,\"timestamp\":5}\n",
                Format::Ndjson,
                &[(1, "A@5=1")],
            ),
            (
                b"\xef\xbb\xbf\r\n{\"symbol\":\"A\",\"price\":1,\"timestamp\":5}\n",
                Format::Ndjson,
                &[(2, "A@5=1")],
            ),
            // Only at the very start: anywhere else it is not part of a valid tick.
            (
                b"{\"symbol\":\"A\",\"price\":1,\"timestamp\":5}\n\xef\xbb\xbf{}\n",
                Format::Ndjson,
                &[
                    (1, "A@5=1"),
                    (2, "body: not valid JSON: expected value at line 1 column 1"),
                ],
            ),
        ];
        for (input, format, expected) in cases {
            let got = messages(input, *format).expect("readable");
            let expected: Vec<(u64, String)> = expected
                .iter()
                .map(|(l, m)| (*l, (*m).to_owned()))
                .collect();
            assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn csv_header_problems_name_the_column_with_input_escaped() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"symbol,price,price,timestamp\nA,1,2,3\n",
                "CSV header (line 1) names the column \"price\" more than once",
            ),
            (
                b"Symbol,price,timestamp, SYMBOL \nA,1,2,B\n",
                "names the column \"symbol\" more than once",
            ),
            (
                b"symbol,price,timestamp,venue,Venue\n",
                "names the column \"venue\" more than once",
            ),
            (
                b"sym\x1b[31mbol,price,timestamp\nA,1,2\n",
                "must name the columns symbol, price and timestamp; it has: \"sym\\u{1b}[31mbol\", \"price\", \"timestamp\"",
            ),
            (
                b"\"symbol,price,timestamp\n",
                "it has: \"\\\"symbol,price,timestamp\" (a quoted name is never closed)",
            ),
        ];
        for (input, needle) in cases {
            let error = messages(input, Format::Csv).expect_err("refused");
            assert!(
                error.contains(needle),
                "{error:?} should contain {needle:?}"
            );
            assert!(!error.contains('\x1b'), "{error:?} has a raw ESC");
        }
        // Unnamed columns may repeat (a trailing comma or two).
        assert_eq!(
            messages(b"symbol,price,timestamp,,\nA,1,5,,\n", Format::Csv).expect("readable"),
            [(2, "A@5=1".to_owned())]
        );
    }

    #[test]
    fn csv_row_errors_speak_csv() {
        // (row after the header `symbol,price,timestamp`, the message)
        let cases: &[(&[u8], &str)] = &[
            (b"A,1", "row has 2 fields, the header has 3"),
            (b"A,1,5,x", "row has 4 fields, the header has 3"),
            (b"\"A,1,5", "row has a quoted field that is never closed"),
            (
                b"A,abc,5",
                "price: must be a number like 151.25, got \"abc\"",
            ),
            (
                b"A,NaN,5",
                "price: must be a number like 151.25, got \"NaN\"",
            ),
            (b"A,1e400,5", "price: must be below 1e12, got 1e400"),
            (b"A,-1e400,5", "price: must be greater than 0, got -1e400"),
            (b"A,1e300,5", "price: must be below 1e12, got 1e300"),
            (b"A,0,5", "price: must be greater than 0, got 0"),
            (
                b"A,\"1\x1b[0m\",5",
                "price: must be a number like 151.25, got \"1\\u{1b}[0m\"",
            ),
            (
                b"A\x1b[31mX,1,5",
                "symbol: has U+001B at position 2; allowed are A-Z a-z 0-9 . _ - : /, got \"A\\u{1b}[31mX\"",
            ),
            (
                b"A,1,1767225600000.0",
                "timestamp: must be an integer of epoch milliseconds, not a float, got 1767225600000.0",
            ),
            (
                b"A,1,1.5e3",
                "timestamp: must be an integer of epoch milliseconds, not a float, got 1.5e3",
            ),
            (
                b"A,1,99999999999999999999",
                "timestamp: must be between 1970-01-01 and 2100-01-01 (epoch milliseconds), got 99999999999999999999",
            ),
            (
                b"A,1,-5",
                "timestamp: must be between 1970-01-01 and 2100-01-01",
            ),
            (
                b"A,1,2026-11-26T14:30:00\x1b",
                "timestamp: has a malformed UTC offset; use Z or \u{b1}HH:MM, got \"2026-11-26T14:30:00\\u{1b}\"",
            ),
            (b"A,1,\xff", "body: not valid UTF-8"),
        ];
        for (row, needle) in cases {
            let mut input = b"symbol,price,timestamp\n".to_vec();
            input.extend_from_slice(row);
            let got = messages(&input, Format::Csv).expect("readable");
            let [(2, message)] = got.as_slice() else {
                panic!(
                    "{:?}: one rejected row expected, got {got:?}",
                    String::from_utf8_lossy(row)
                );
            };
            assert!(
                message.contains(needle),
                "{message:?} should contain {needle:?}"
            );
            assert!(!message.contains("JSON"), "{message:?} mentions JSON");
            assert!(!message.contains('\x1b'), "{message:?} has a raw ESC");
        }
    }

    #[test]
    fn csv_volume_column_is_optional() {
        /// Every tick as `symbol@ms=price/volume`, or its message, by line.
        fn volumes(input: &str) -> Vec<(u64, String)> {
            let bytes = io::Cursor::new(input.as_bytes().to_vec());
            let mut reader =
                TickReader::with_chunks(bytes, Format::Csv, 16).expect("reader thread");
            let mut out = Vec::new();
            while let Some(batch) = reader.next_batch().expect("readable") {
                for (line, tick) in batch {
                    out.push((
                        line,
                        match tick {
                            Ok(t) => {
                                format!("{}@{}={}/{}", t.symbol, t.at.epoch_ms(), t.price, t.volume)
                            }
                            Err(e) => e.to_string(),
                        },
                    ));
                }
            }
            out
        }
        // (input, what each data line gives)
        let cases: &[(&str, &[(u64, &str)])] = &[
            ("symbol,price,timestamp\nA,1,5\n", &[(2, "A@5=1/0")]),
            (
                "symbol,price,timestamp,volume\nA,1,5,300\nB,2,6,\nC,3,7, 1.5e3 \nD,4,8,\"12\"\n",
                &[
                    (2, "A@5=1/300"),
                    (3, "B@6=2/0"),
                    (4, "C@7=3/1500"),
                    (5, "D@8=4/12"),
                ],
            ),
            (
                " Volume ,timestamp,symbol,price,venue\n0,5,A,1,x\n-0,6,B,2,y\n",
                &[(2, "A@5=1/0"), (3, "B@6=2/0")],
            ),
            (
                "symbol,price,timestamp,volume\nA,1,5,-1\nA,1,6,abc\nA,1,7,1e16\nA,1,8,NaN\nA,1,9,\"1\x1b[0m\"\n",
                &[
                    (2, "volume: must be at least 0, got -1"),
                    (3, "volume: must be a number like 300, got \"abc\""),
                    (4, "volume: must be at most 1e15, got 1e16"),
                    (5, "volume: must be a number like 300, got \"NaN\""),
                    (6, "volume: must be a number like 300, got \"1\\u{1b}[0m\""),
                ],
            ),
            // The row must still have every column of the header, the volume's included.
            (
                "symbol,price,timestamp,volume\nA,1,5\n",
                &[(2, "row has 3 fields, the header has 4")],
            ),
        ];
        for (input, expected) in cases {
            let expected: Vec<(u64, String)> = expected
                .iter()
                .map(|(l, m)| (*l, (*m).to_owned()))
                .collect();
            assert_eq!(volumes(input), expected, "{input:?}");
        }
        let error =
            messages(b"symbol,price,timestamp,volume,VOLUME\n", Format::Csv).expect_err("refused");
        assert!(
            error.contains("names the column \"volume\" more than once"),
            "{error}"
        );
    }

    #[test]
    fn csv_needs_a_header_with_the_three_columns() {
        let error = read_all("sym,price,timestamp\nA,1,2\n", Format::Csv).expect_err("bad header");
        assert!(
            error.to_string().contains("must name the columns"),
            "{error}"
        );
        assert!(read_all("", Format::Csv).expect("empty is fine").is_empty());
    }

    #[test]
    fn csv_splitting() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("a,b,c", Some(&["a", "b", "c"])),
            ("a,,c", Some(&["a", "", "c"])),
            ("\"a,b\",c", Some(&["a,b", "c"])),
            ("\"a\"\"b\",c", Some(&["a\"b", "c"])),
            ("\"open", None),
            ("", Some(&[""])),
        ];
        for (line, expected) in cases {
            let got = split_csv(line).map(|f| f.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(
                got,
                expected.map(|e| e.iter().map(|s| s.to_string()).collect()),
                "{line:?}"
            );
        }
    }
}
