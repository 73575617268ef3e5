//! Read-ahead on a thread of its own, so that reading never waits on processing and processing
//! can tell whether more input is ready without waiting for it.
//!
//! A reader thread reads the input in chunks and queues them (bounded: at most
//! [`PREFETCH_CHUNKS_MAX`] chunks of [`PREFETCH_CHUNK_BYTES`] wait in the queue). [`Prefetch`] hands
//! them out as a [`BufRead`]; [`Prefetch::ready`] says whether the next bytes are already here.
//! For a file or a fast pipe the queue stays full and batches grow to their maximum; for a live
//! feed, a batch ends with whatever has arrived, so its alerts go out at once.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

/// Bytes asked for per read.
pub const PREFETCH_CHUNK_BYTES: usize = 256 * 1024;

/// Chunks that may wait, read but not yet processed (so at most 8 MiB of read-ahead).
pub const PREFETCH_CHUNKS_MAX: usize = 32;

/// Chunks handed back for reuse: the reader fills a spent chunk again instead of allocating and
/// zeroing a new one (and the kernel faulting its pages in) for every read.
const SPARE_CHUNKS_MAX: usize = 4;

/// The consuming end: a [`BufRead`] over the chunks the reader thread sends.
pub struct Prefetch {
    chunks: Receiver<io::Result<Vec<u8>>>,
    /// Spent chunks, back to the reader thread.
    spare: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    /// An error the reader thread sent, seen by `ready` before anyone read it.
    error: Option<io::Error>,
    eof: bool,
}

impl Prefetch {
    /// Starts reading `input` on a new thread, in chunks of `chunk_bytes`.
    pub fn spawn<R: Read + Send + 'static>(input: R, chunk_bytes: usize) -> io::Result<Prefetch> {
        let (sender, chunks) = sync_channel(PREFETCH_CHUNKS_MAX);
        let (spare, spares) = sync_channel(SPARE_CHUNKS_MAX);
        std::thread::Builder::new()
            .name("tickwatch-reader".into())
            .spawn(move || read_ahead(input, chunk_bytes.max(1), &sender, &spares))?;
        Ok(Prefetch {
            chunks,
            spare,
            current: Vec::new(),
            at: 0,
            error: None,
            eof: false,
        })
    }

    /// Whether reading now would not wait: bytes are buffered, or the end (or an error) arrived.
    pub fn ready(&mut self) -> bool {
        if self.at < self.current.len() || self.eof || self.error.is_some() {
            return true;
        }
        match self.chunks.try_recv() {
            Ok(chunk) => {
                self.take(chunk);
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => {
                self.eof = true;
                true
            }
        }
    }

    fn take(&mut self, chunk: io::Result<Vec<u8>>) {
        match chunk {
            Ok(bytes) if bytes.is_empty() => self.eof = true,
            Ok(bytes) => {
                let spent = std::mem::replace(&mut self.current, bytes);
                self.at = 0;
                if spent.capacity() > 0 {
                    // Refused when the reader has spares enough or has ended: then it is
                    // dropped here.
                    let _ = self.spare.try_send(spent);
                }
            }
            Err(error) => self.error = Some(error),
        }
    }
}

/// The reader thread: reads until the end, an error, or the consumer going away.
fn read_ahead<R: Read>(
    mut input: R,
    chunk_bytes: usize,
    sender: &SyncSender<io::Result<Vec<u8>>>,
    spares: &Receiver<Vec<u8>>,
) {
    loop {
        let mut chunk = spares.try_recv().unwrap_or_default();
        // A spare is zeroed only where its last read fell short.
        chunk.resize(chunk_bytes, 0);
        let sent = match input.read(&mut chunk) {
            Ok(0) => {
                let _ = sender.send(Ok(Vec::new()));
                return;
            }
            Ok(n) => {
                chunk.truncate(n);
                sender.send(Ok(chunk))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        };
        if sent.is_err() {
            return; // The consumer is gone.
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Prefetch {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.at >= self.current.len() && !self.eof {
            if let Some(error) = self.error.take() {
                return Err(error);
            }
            match self.chunks.recv() {
                Ok(chunk) => self.take(chunk),
                Err(_) => self.eof = true,
            }
        }
        Ok(&self.current[self.at.min(self.current.len())..])
    }

    fn consume(&mut self, n: usize) {
        self.at = (self.at + n).min(self.current.len());
    }
}

/// Test input that a test feeds by hand: each read returns the next bytes sent (at most one
/// read's worth), and the end once the sender is dropped.
#[cfg(test)]
pub(crate) struct Gate(pub(crate) Receiver<Vec<u8>>);

#[cfg(test)]
impl Read for Gate {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self.0.recv() {
            Ok(bytes) => {
                out[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
            Err(_) => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_everything_in_order_in_small_chunks() {
        let input: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut prefetch = Prefetch::spawn(io::Cursor::new(input.clone()), 7).expect("thread");
        let mut out = Vec::new();
        prefetch.read_to_end(&mut out).expect("reads");
        assert_eq!(out, input);
        assert!(prefetch.ready(), "the end is ready");
    }

    #[test]
    fn ready_tells_whether_reading_would_wait() {
        let (feed, gate) = std::sync::mpsc::channel();
        let mut prefetch = Prefetch::spawn(Gate(gate), 64).expect("thread");
        assert!(!prefetch.ready(), "nothing sent yet");
        feed.send(b"abc".to_vec()).expect("send");
        assert_eq!(prefetch.fill_buf().expect("reads"), b"abc");
        prefetch.consume(3);
        assert!(!prefetch.ready(), "consumed, and nothing more sent");
        drop(feed);
        assert_eq!(prefetch.fill_buf().expect("reads"), b"");
        assert!(prefetch.ready());
    }

    #[test]
    fn reused_chunks_carry_only_what_their_read_returned() {
        // Long reads, then short ones into the same (recycled) chunks: a chunk whose read fell
        // short must not hand out the bytes of its previous use.
        let (feed, gate) = std::sync::mpsc::channel();
        let mut prefetch = Prefetch::spawn(Gate(gate), 64).expect("thread");
        let mut sent = Vec::new();
        let mut received = Vec::new();
        for round in 0..40u8 {
            let len = if round % 3 == 0 {
                64
            } else {
                usize::from(round % 7) + 1
            };
            let bytes = vec![b'a' + round % 26; len];
            sent.extend_from_slice(&bytes);
            feed.send(bytes).expect("send");
            while received.len() < sent.len() {
                let available = prefetch.fill_buf().expect("reads").to_vec();
                prefetch.consume(available.len());
                received.extend_from_slice(&available);
            }
        }
        drop(feed);
        prefetch.read_to_end(&mut received).expect("reads");
        assert_eq!(received, sent);
    }

    #[test]
    fn a_read_error_reaches_the_consumer() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut prefetch = Prefetch::spawn(Broken, 64).expect("thread");
        let error = prefetch.fill_buf().expect_err("the error arrives");
        assert_eq!(error.to_string(), "disk on fire");
    }
}
