//! Conditions over time: the window of a symbol's recent past that `rise`, `fall`, `volume` and
//! `crosses_ma` rules look at, kept as fixed-size intervals whatever the tick rate.
//!
//! A window `W` (1 minute to [`WINDOW_MINUTES_MAX`]) is [`WINDOW_INTERVALS`] intervals of `W / 60`
//! each, aligned to the Unix epoch: 1-second intervals for a 1-minute window, 1 minute for an
//! hour, 24 minutes for a day. The resolution is the precision of "within W": at a tick in
//! interval `i`, the window is intervals `i - 59 ..= i`, so a price seen less than `W - W/60`
//! before the tick always counts, one seen `W` or more before it never does, and in between it
//! depends on where the interval boundaries fall.
//!
//! Each rule keeps, per symbol, one [`Series`]: for each interval of its window that saw a tick,
//! the one statistic its condition needs (the lowest price for `rise`, the highest for `fall`,
//! the summed volume for `volume`, the last price for `crosses_ma`). Intervals without ticks
//! hold nothing and count for nothing. Only in-order ticks feed a series (the cursor never shows
//! it a stale tick), so a redelivered or duplicated tick never counts twice.
//!
//! Comparisons are exact up to [`RATIO_TOLERANCE`]: a price exactly 10 % above the low counts
//! as a 10 % rise, even though `110` and `100 × 1.1` differ in binary floating point.

use std::fmt;
use std::str::FromStr;

use super::RulesError;
use super::model::Test;
use crate::alert::AlertKind;
use crate::tick::{Tick, quote};

/// Intervals in every window: the resolution of a window is 1/60 of it.
pub const WINDOW_INTERVALS: usize = 60;

// The window aggregates in four lanes.
const _: () = assert!(WINDOW_INTERVALS.is_multiple_of(4));

/// Shortest window, in minutes.
pub const WINDOW_MINUTES_MIN: u32 = 1;

/// Longest window, in minutes: 31 days (daily data needs windows of days).
pub const WINDOW_MINUTES_MAX: u32 = 31 * 24 * 60;

/// Relative tolerance of the comparisons of window conditions. Decimal prices are not exact in
/// binary (`100 × 1.1` is `110.00000000000001`); a relative error below this is rounding, not a
/// difference. It is far below the precision of any price written with up to 14 significant
/// digits, and above the rounding of the few operations a comparison takes.
pub const RATIO_TOLERANCE: f64 = 2e-15;

/// Largest percentage of a `rise` condition.
pub const RISE_PERCENT_MAX: f64 = 10_000.0;

/// Largest factor of a `volume` condition.
pub const VOLUME_FACTOR_MAX: f64 = 1_000_000.0;

/// The span of a window condition: a whole number of minutes, written `90m`, `4h` or `5d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    minutes: u32,
}

impl Window {
    /// A window of `minutes`, within [`WINDOW_MINUTES_MIN`] ..= [`WINDOW_MINUTES_MAX`].
    pub fn from_minutes(minutes: u32) -> Result<Window, RulesError> {
        if !(WINDOW_MINUTES_MIN..=WINDOW_MINUTES_MAX).contains(&minutes) {
            return Err(RulesError::new(
                "condition",
                format!(
                    "window must be 1m to {}d, got {minutes} minutes",
                    WINDOW_MINUTES_MAX / 1440
                ),
            ));
        }
        Ok(Window { minutes })
    }

    /// The span in minutes.
    pub fn minutes(self) -> u32 {
        self.minutes
    }

    /// The length of one interval, in milliseconds: the window / [`WINDOW_INTERVALS`].
    pub fn interval_ms(self) -> i64 {
        i64::from(self.minutes) * 60_000 / WINDOW_INTERVALS as i64
    }
}

impl FromStr for Window {
    type Err = RulesError;
    fn from_str(text: &str) -> Result<Window, RulesError> {
        let invalid = || {
            RulesError::new(
                "condition",
                format!(
                    "window must be a whole number of minutes, hours or days such as 30m, 4h or 5d, got {}",
                    quote(text)
                ),
            )
        };
        let unit_at = text.len().checked_sub(1).ok_or_else(invalid)?;
        let (number, unit) = text.split_at(unit_at);
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let count: u64 = number.parse().map_err(|_| invalid())?;
        let minutes = match unit {
            "m" => count,
            "h" => count.saturating_mul(60),
            "d" => count.saturating_mul(1440),
            _ => return Err(invalid()),
        };
        Window::from_minutes(u32::try_from(minutes).unwrap_or(u32::MAX))
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minutes {
            m if m % 1440 == 0 => write!(f, "{}d", m / 1440),
            m if m % 60 == 0 => write!(f, "{}h", m / 60),
            m => write!(f, "{m}m"),
        }
    }
}

/// Which crossings of its moving average a `crosses_ma` rule reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From below to above.
    Up,
    /// From above to below.
    Down,
    /// Both.
    Either,
}

impl Direction {
    /// `up`, `down` or `either`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Either => "either",
        }
    }
}

/// The one statistic a series keeps per interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stat {
    /// The lowest price (`rise`).
    Low,
    /// The highest price (`fall`).
    High,
    /// The summed volume (`volume`).
    Volume,
    /// The last price (`crosses_ma`).
    Close,
}

impl Stat {
    fn code(self) -> u8 {
        match self {
            Stat::Low => 0,
            Stat::High => 1,
            Stat::Volume => 2,
            Stat::Close => 3,
        }
    }

    fn from_code(code: u8) -> Option<Stat> {
        Some(match code {
            0 => Stat::Low,
            1 => Stat::High,
            2 => Stat::Volume,
            3 => Stat::Close,
            _ => return None,
        })
    }
}

/// A condition over a window, as a rule holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WindowCondition {
    /// `rise X% within W`: the price is at least X % above the lowest price of the window.
    Rise {
        /// X.
        percent: f64,
        /// W.
        window: Window,
    },
    /// `fall X% within W`: the price is at least X % below the highest price of the window.
    Fall {
        /// X (below 100).
        percent: f64,
        /// W.
        window: Window,
    },
    /// `volume Kx over W`: the volume of the tick's interval so far is at least K times the
    /// average volume of the window's earlier intervals that saw ticks.
    Volume {
        /// K.
        factor: f64,
        /// W.
        window: Window,
    },
    /// `crosses_ma W [up|down|either]`: the price crosses the simple moving average of the
    /// window's interval closes.
    CrossesMa {
        /// W.
        window: Window,
        /// Which crossings count.
        direction: Direction,
    },
}

/// What a window condition says of one tick: the test, the alert's kind, and the level the tick
/// was compared with (the alert's threshold).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Signal {
    /// Holds or clear (window conditions have no hysteresis, so never near).
    pub test: Test,
    /// `HIGH` for rises, volume spikes and upward crossings, `LOW` for falls and downward ones.
    pub kind: AlertKind,
    /// When it holds: the price the rule compared with (`low × (1 + X%)`, `high × (1 − X%)`,
    /// the moving average), or K × the average volume. Otherwise 0.
    pub threshold: f64,
}

impl WindowCondition {
    /// The window.
    pub fn window(&self) -> Window {
        match *self {
            WindowCondition::Rise { window, .. }
            | WindowCondition::Fall { window, .. }
            | WindowCondition::Volume { window, .. }
            | WindowCondition::CrossesMa { window, .. } => window,
        }
    }

    /// The statistic its series keeps.
    pub fn stat(&self) -> Stat {
        match self {
            WindowCondition::Rise { .. } => Stat::Low,
            WindowCondition::Fall { .. } => Stat::High,
            WindowCondition::Volume { .. } => Stat::Volume,
            WindowCondition::CrossesMa { .. } => Stat::Close,
        }
    }

    /// The alert kind when it fires, as far as it is fixed (`crosses_ma either` depends on the
    /// crossing: `HIGH` here).
    pub fn kind(&self) -> AlertKind {
        match self {
            WindowCondition::Fall { .. }
            | WindowCondition::CrossesMa {
                direction: Direction::Down,
                ..
            } => AlertKind::Low,
            _ => AlertKind::High,
        }
    }

    /// A new, empty series for this condition.
    pub fn series(&self) -> Series {
        Series::new(self.stat(), self.window().interval_ms())
    }

    /// Feeds `tick` (newer than any tick `series` has seen) into `series` and says what the
    /// condition makes of it.
    pub fn observe(&self, series: &mut Series, tick: &Tick) -> Signal {
        let price = tick.price.get();
        series.feed(tick.at.epoch_ms(), price, tick.volume.get());
        // The threshold is worked out only for a tick that fires: most do not.
        let holds = |yes: bool, kind, threshold: &dyn Fn() -> f64| Signal {
            test: if yes { Test::Holds } else { Test::Clear },
            kind,
            threshold: if yes { threshold() } else { 0.0 },
        };
        match *self {
            WindowCondition::Rise { percent, .. } => {
                // The window's low includes this tick, so a tick that is the low never rises.
                let low = series.extreme();
                let rose = price * 100.0 >= low * (100.0 + percent) * (1.0 - RATIO_TOLERANCE);
                holds(rose, AlertKind::High, &|| low * (100.0 + percent) / 100.0)
            }
            WindowCondition::Fall { percent, .. } => {
                let high = series.extreme();
                let fell = price * 100.0 <= high * (100.0 - percent) * (1.0 + RATIO_TOLERANCE);
                holds(fell, AlertKind::Low, &|| high * (100.0 - percent) / 100.0)
            }
            WindowCondition::Volume { factor, .. } => {
                // No earlier interval saw a tick: there is no average to compare with.
                let (sum, count) = series.earlier().unwrap_or((0.0, 0));
                let volume = series.current();
                let spike = count > 0
                    && volume > 0.0
                    && volume * count as f64 >= factor * sum * (1.0 - RATIO_TOLERANCE);
                holds(spike, AlertKind::High, &|| factor * sum / count as f64)
            }
            WindowCondition::CrossesMa { direction, .. } => {
                let (sum, count) = series.earlier().unwrap_or((0.0, 0));
                // Which side of the average the price is on: compare price × n with the sum of
                // the n earlier closes (the price's own share of the average cancels out).
                let gap = price * count as f64 - sum;
                let side = if gap.abs() <= sum.abs() * RATIO_TOLERANCE {
                    0
                } else if gap > 0.0 {
                    1
                } else {
                    -1
                };
                let before = series.side;
                if side != 0 {
                    series.side = side;
                }
                let crossed = before != 0 && side != 0 && side != before;
                let kind = if side > 0 {
                    AlertKind::High
                } else {
                    AlertKind::Low
                };
                let wanted = match direction {
                    Direction::Up => side > 0,
                    Direction::Down => side < 0,
                    Direction::Either => true,
                };
                holds(crossed && wanted, kind, &|| {
                    (sum + price) / (count + 1) as f64
                })
            }
        }
    }
}

impl FromStr for WindowCondition {
    type Err = RulesError;
    /// `rise 10% within 1h`, `fall 5% within 30m`, `volume 3x over 1h`, `crosses_ma 1h [up|down|either]`.
    fn from_str(text: &str) -> Result<WindowCondition, RulesError> {
        let invalid = |reason: String| RulesError::new("condition", reason);
        let words: Vec<&str> = text.split_whitespace().collect();
        let number = |word: &str, suffix: char, what: &str| -> Result<f64, RulesError> {
            let digits = word.strip_suffix(suffix).ok_or_else(|| {
                invalid(format!(
                    "{what} must end in {suffix:?}, got {} (in {})",
                    quote(word),
                    quote(text)
                ))
            })?;
            let value: f64 = digits.parse().map_err(|_| {
                invalid(format!(
                    "{} is not a number (in {})",
                    quote(digits),
                    quote(text)
                ))
            })?;
            if !value.is_finite() || value <= 0.0 {
                return Err(invalid(format!(
                    "{what} must be above 0, got {}",
                    quote(digits)
                )));
            }
            Ok(value)
        };
        match words.as_slice() {
            [verb @ ("rise" | "fall"), amount, "within", window] => {
                let percent = number(amount, '%', "the percentage")?;
                let window = window.parse()?;
                if *verb == "rise" {
                    if percent > RISE_PERCENT_MAX {
                        return Err(invalid(format!(
                            "a rise must be at most {RISE_PERCENT_MAX}%, got {}",
                            quote(amount)
                        )));
                    }
                    Ok(WindowCondition::Rise { percent, window })
                } else {
                    if percent >= 100.0 {
                        return Err(invalid(format!(
                            "a fall must be below 100%, got {}",
                            quote(amount)
                        )));
                    }
                    Ok(WindowCondition::Fall { percent, window })
                }
            }
            ["volume", amount, "over", window] => {
                let amount = amount.replace('×', "x");
                let factor = number(&amount, 'x', "the factor")?;
                if factor > VOLUME_FACTOR_MAX {
                    return Err(invalid(format!(
                        "the factor must be at most {VOLUME_FACTOR_MAX}, got {}",
                        quote(&amount)
                    )));
                }
                Ok(WindowCondition::Volume {
                    factor,
                    window: window.parse()?,
                })
            }
            ["crosses_ma", window, rest @ ..] => {
                let direction = match rest {
                    [] | ["either"] => Direction::Either,
                    ["up"] => Direction::Up,
                    ["down"] => Direction::Down,
                    _ => {
                        return Err(invalid(format!(
                            "crosses_ma takes a window and up, down or either, got {}",
                            quote(text)
                        )));
                    }
                };
                Ok(WindowCondition::CrossesMa {
                    window: window.parse()?,
                    direction,
                })
            }
            _ => Err(invalid(format!(
                "must be \"above X\", \"below X\", \"rise X% within W\", \"fall X% within W\", \
                 \"volume Kx over W\" or \"crosses_ma W [up|down|either]\", got {}",
                quote(text)
            ))),
        }
    }
}

impl fmt::Display for WindowCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::tick::format_number;
        match self {
            WindowCondition::Rise { percent, window } => {
                write!(f, "rise {}% within {window}", format_number(*percent))
            }
            WindowCondition::Fall { percent, window } => {
                write!(f, "fall {}% within {window}", format_number(*percent))
            }
            WindowCondition::Volume { factor, window } => {
                write!(f, "volume {}x over {window}", format_number(*factor))
            }
            WindowCondition::CrossesMa { window, direction } => match direction {
                Direction::Either => write!(f, "crosses_ma {window}"),
                _ => write!(f, "crosses_ma {window} {}", direction.as_str()),
            },
        }
    }
}

/// One rule's window for one symbol: a ring of [`WINDOW_INTERVALS`] interval statistics, the
/// newest interval being the one of the newest tick fed. `NaN` marks an interval without ticks.
#[derive(Clone, Debug)]
pub struct Series {
    stat: Stat,
    interval_ms: i64,
    /// The interval index (epoch ms / interval) of the newest tick fed; `None` before the first.
    head: Option<i64>,
    /// Statistic of interval `i` at `slots[i mod 60]`.
    slots: [f64; WINDOW_INTERVALS],
    /// `crosses_ma`: the side of the average the price was last on (-1, 1; 0 not yet known).
    side: i8,
    /// Derived from `head`, never stored: its slot, and the first millisecond after its interval
    /// (a tick before it falls into the head interval, the common case, with no division).
    head_slot: usize,
    head_end_ms: i64,
    /// Over the window's intervals before the head: the extreme (low, high), or the sum and the
    /// number of intervals with ticks (volume, close). Derived, never stored.
    earlier: Aggregate,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Aggregate {
    value: f64,
    count: u32,
}

impl PartialEq for Series {
    fn eq(&self, other: &Series) -> bool {
        self.stat == other.stat
            && self.interval_ms == other.interval_ms
            && self.head == other.head
            && self.side == other.side
            && self
                .slots
                .iter()
                .zip(&other.slots)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Series {
    /// An empty series keeping `stat` over intervals of `interval_ms`.
    pub fn new(stat: Stat, interval_ms: i64) -> Series {
        Series {
            stat,
            interval_ms: interval_ms.max(1),
            head: None,
            slots: [f64::NAN; WINDOW_INTERVALS],
            side: 0,
            head_slot: 0,
            head_end_ms: i64::MIN,
            earlier: Aggregate {
                value: 0.0,
                count: 0,
            },
        }
    }

    /// Whether it keeps what `condition` needs (the same statistic at the same resolution): then
    /// an edited rule keeps its window.
    pub fn fits(&self, condition: &WindowCondition) -> bool {
        self.stat == condition.stat() && self.interval_ms == condition.window().interval_ms()
    }

    /// Intervals of the window that saw ticks.
    pub fn intervals_with_ticks(&self) -> usize {
        self.slots.iter().filter(|v| !v.is_nan()).count()
    }

    fn slot(index: i64) -> usize {
        index.rem_euclid(WINDOW_INTERVALS as i64) as usize
    }

    /// Makes interval `index` the head.
    fn set_head(&mut self, index: i64) {
        self.head = Some(index);
        self.head_slot = Series::slot(index);
        self.head_end_ms = index.saturating_add(1).saturating_mul(self.interval_ms);
    }

    /// Adds a tick at `at_ms` (not older than the newest fed).
    fn feed(&mut self, at_ms: i64, price: f64, volume: f64) {
        if at_ms >= self.head_end_ms {
            let index = at_ms.div_euclid(self.interval_ms);
            if let Some(head) = self.head {
                let gap = (index - head).min(WINDOW_INTERVALS as i64);
                for step in 1..=gap {
                    self.slots[Series::slot(index - gap + step)] = f64::NAN;
                }
            }
            self.set_head(index);
            self.aggregate();
        }
        let slot = &mut self.slots[self.head_slot];
        *slot = match (self.stat, slot.is_nan()) {
            (Stat::Low, true) | (Stat::High, true) | (Stat::Close, _) => price,
            (Stat::Low, false) => slot.min(price),
            (Stat::High, false) => slot.max(price),
            (Stat::Volume, true) => volume,
            (Stat::Volume, false) => *slot + volume,
        };
    }

    /// Recomputes the aggregate of the intervals before the head: a pure function of the slots
    /// (so a window read back from a store aggregates exactly as the one that was written), in
    /// four independent lanes so that the 60 additions or comparisons do not wait on each other.
    fn aggregate(&mut self) {
        // The head's own value is left out (`NaN` counts as no value).
        let head = std::mem::replace(&mut self.slots[self.head_slot], f64::NAN);
        let chunks = self.slots.chunks_exact(4);
        self.earlier = match self.stat {
            Stat::Low | Stat::High => {
                // `f64::min`/`max` ignore a `NaN` operand.
                let pick = if self.stat == Stat::Low {
                    f64::min
                } else {
                    f64::max
                };
                let start = if self.stat == Stat::Low {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                };
                let lanes = chunks.fold([start; 4], |lanes, c| {
                    [
                        pick(lanes[0], c[0]),
                        pick(lanes[1], c[1]),
                        pick(lanes[2], c[2]),
                        pick(lanes[3], c[3]),
                    ]
                });
                Aggregate {
                    value: pick(pick(lanes[0], lanes[1]), pick(lanes[2], lanes[3])),
                    count: 0,
                }
            }
            Stat::Volume | Stat::Close => {
                let value = |v: f64| if v.is_nan() { 0.0 } else { v };
                let (sums, count) = chunks.fold(([0.0f64; 4], 0u32), |(s, n), c| {
                    (
                        [
                            s[0] + value(c[0]),
                            s[1] + value(c[1]),
                            s[2] + value(c[2]),
                            s[3] + value(c[3]),
                        ],
                        n + c.iter().filter(|v| !v.is_nan()).count() as u32,
                    )
                });
                Aggregate {
                    value: (sums[0] + sums[1]) + (sums[2] + sums[3]),
                    count,
                }
            }
        };
        self.slots[self.head_slot] = head;
    }

    /// The statistic of the head interval.
    fn current(&self) -> f64 {
        if self.head.is_some() {
            self.slots[self.head_slot]
        } else {
            f64::NAN
        }
    }

    /// `rise`/`fall`: the lowest (highest) price of the whole window, the head interval included.
    fn extreme(&self) -> f64 {
        match self.stat {
            Stat::High => self.earlier.value.max(self.current()),
            _ => self.earlier.value.min(self.current()),
        }
    }

    /// `volume`/`crosses_ma`: the sum over the earlier intervals with ticks, and their number;
    /// `None` when there are none.
    fn earlier(&self) -> Option<(f64, u32)> {
        (self.earlier.count > 0).then_some((self.earlier.value, self.earlier.count))
    }

    /// Appends the binary form (see `state.rs`): stat u8, interval ms u32 BE, head i64 BE,
    /// side i8, a u64 BE bitmap of the slots that hold a value, then each such value as f64 BE in
    /// slot order.
    pub(crate) fn encode(&self, bytes: &mut Vec<u8>) {
        bytes.push(self.stat.code());
        bytes.extend_from_slice(&(self.interval_ms as u32).to_be_bytes());
        bytes.extend_from_slice(&self.head.unwrap_or(-1).to_be_bytes());
        bytes.push(self.side as u8);
        let mut bitmap = 0u64;
        for (i, value) in self.slots.iter().enumerate() {
            if !value.is_nan() {
                bitmap |= 1 << i;
            }
        }
        bytes.extend_from_slice(&bitmap.to_be_bytes());
        for value in self.slots.iter().filter(|v| !v.is_nan()) {
            bytes.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// Reads what [`Series::encode`] wrote from the front of `rest`, advancing it.
    pub(crate) fn decode<'a>(rest: &mut &'a [u8]) -> Result<Series, &'static str> {
        let mut next = |n: usize| -> Result<&'a [u8], &'static str> {
            let bytes: &'a [u8] = rest;
            if bytes.len() < n {
                return Err("window cut short");
            }
            let (head, tail) = bytes.split_at(n);
            *rest = tail;
            Ok(head)
        };
        let stat = Stat::from_code(next(1)?[0]).ok_or("unknown window statistic")?;
        let interval_ms = u32::from_be_bytes(next(4)?.try_into().map_err(|_| "interval")?);
        let head = i64::from_be_bytes(next(8)?.try_into().map_err(|_| "head")?);
        let side = next(1)?[0] as i8;
        let bitmap = u64::from_be_bytes(next(8)?.try_into().map_err(|_| "bitmap")?);
        if interval_ms == 0 || !(-1..=1).contains(&side) || bitmap >> WINDOW_INTERVALS != 0 {
            return Err("window header is invalid");
        }
        if head < 0 && (head != -1 || bitmap != 0) {
            return Err("window head is invalid");
        }
        let mut series = Series::new(stat, i64::from(interval_ms));
        series.side = side;
        for (i, slot) in series.slots.iter_mut().enumerate() {
            if bitmap & (1 << i) != 0 {
                let value = f64::from_be_bytes(next(8)?.try_into().map_err(|_| "value")?);
                if !value.is_finite() {
                    return Err("window value is not finite");
                }
                *slot = value;
            }
        }
        if head >= 0 {
            series.set_head(head);
        }
        series.aggregate();
        Ok(series)
    }
}
