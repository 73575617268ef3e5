//! `Volume`: the traded volume a tick reports, a finite number from 0 up to a sanity bound.

use std::fmt;

use super::{TickError, format_number};

/// Volumes may be at most this. A whole day's trading in the busiest instruments is a few billion
/// shares; a single tick a million times that is a unit or encoding mistake upstream, and the
/// bound keeps sums of many volumes (a rule's window) far from losing integer precision.
pub const VOLUME_MAX: f64 = 1e15;

/// A traded volume: finite, at least 0 and at most [`VOLUME_MAX`]. Ticks without a volume carry
/// [`Volume::ZERO`].
#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub struct Volume(f64);

impl Volume {
    /// No volume: what a tick without the field reports.
    pub const ZERO: Volume = Volume(0.0);

    /// Validates a number as a volume. Negative zero is zero.
    pub fn new(value: f64) -> Result<Self, TickError> {
        let invalid = |reason: &str| TickError::Volume {
            value: format_number(value),
            reason: reason.into(),
        };
        if !value.is_finite() {
            return Err(invalid("must be a finite number"));
        }
        if value < 0.0 {
            return Err(invalid("must be at least 0"));
        }
        if value > VOLUME_MAX {
            return Err(invalid("must be at most 1e15"));
        }
        // `-0.0 + 0.0` is `+0.0`: a producer's `-0` must not be shown as `-0`.
        Ok(Self(value + 0.0))
    }

    /// The volume as a number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Volume({})", self.0)
    }
}

impl TryFrom<f64> for Volume {
    type Error = TickError;
    fn try_from(value: f64) -> Result<Self, TickError> {
        Self::new(value)
    }
}

impl serde::Serialize for Volume {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Volume {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Volume::new(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}
