//! # tickwatch-clock
//!
//! The one real implementation of the core's [`Clock`] port: wall-clock time from the operating
//! system and sleeps on tokio's timer. It lives apart from the core so the core never reads a
//! clock, and apart from the adapters so that the Lambda function and the local mode share it
//! without depending on each other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tickwatch_core::Timestamp;
use tickwatch_core::ports::Clock;

/// System time and tokio sleeps. Requires a tokio runtime with the time driver enabled.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        // Only a machine whose clock is set outside 1970-2100 can miss; clamp rather than fail.
        Timestamp::from_epoch_ms(ms).unwrap_or_else(|_| {
            let clamped = ms.clamp(
                tickwatch_core::tick::TIMESTAMP_MS_MIN,
                tickwatch_core::tick::TIMESTAMP_MS_END - 1,
            );
            Timestamp::from_epoch_ms(clamped).expect("clamped into range")
        })
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_this_code_was_written() {
        let written = Timestamp::parse_rfc3339("2026-11-26T00:00:00Z").expect("valid");
        assert!(SystemClock.now() > written);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_waits_on_the_tokio_timer() {
        let before = tokio::time::Instant::now();
        SystemClock.sleep(Duration::from_millis(250)).await;
        assert_eq!(before.elapsed(), Duration::from_millis(250));
    }
}
