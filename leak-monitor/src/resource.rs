//! The resources leak-monitor follows, and the units they are measured in.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A resource that can leak. The names are part of the external contract (JSON `resource`,
/// the `resource` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    RssBytes,
    OpenFds,
    Sockets,
    Threads,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::RssBytes,
        Resource::OpenFds,
        Resource::Sockets,
        Resource::Threads,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::RssBytes => "rss_bytes",
            Resource::OpenFds => "open_fds",
            Resource::Sockets => "sockets",
            Resource::Threads => "threads",
        }
    }

    /// The unit a value of this resource is counted in, for humans.
    pub fn unit(self) -> Unit {
        match self {
            Resource::RssBytes => Unit::Bytes,
            Resource::OpenFds | Resource::Sockets | Resource::Threads => Unit::Count,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Count,
}

impl Unit {
    /// Formats an amount of this unit for people: `1.5 MiB`, `1,204`.
    pub fn format(self, amount: f64) -> String {
        match self {
            Unit::Bytes => Bytes(amount.max(0.0) as u64).to_string(),
            Unit::Count => format!("{amount:.0}"),
        }
    }
}

/// A number of bytes. Keeps memory amounts from being mixed up with counts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    pub fn as_f64(self) -> f64 {
        self.0 as f64
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

/// An amount in a resource's unit: bytes for `rss_bytes`, a count of fds, sockets or threads
/// for the others. What a rate adds up to, what a site is credited with, where a series started
/// and ended, the limit it runs into. Serialized as the bare number.
///
/// ```compile_fail
/// use leak_monitor::resource::{Amount, Seconds};
/// let last: Amount = Seconds(3.0); // a time is not an amount
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(pub f64);

impl Amount {
    pub const ZERO: Amount = Amount(0.0);

    /// Formats it for people in `unit`: `1.5 MiB`, `1,204`.
    pub fn format(self, unit: Unit) -> String {
        unit.format(self.0)
    }
}

/// Amounts and shares add up, scale by a factor and order totally, like the numbers they wrap.
macro_rules! quantity_ops {
    ($t:ident) => {
        impl $t {
            pub fn max(self, other: $t) -> $t {
                $t(self.0.max(other.0))
            }

            pub fn total_cmp(&self, other: &$t) -> std::cmp::Ordering {
                self.0.total_cmp(&other.0)
            }
        }

        impl std::ops::Add for $t {
            type Output = $t;
            fn add(self, other: $t) -> $t {
                $t(self.0 + other.0)
            }
        }

        impl std::ops::Sub for $t {
            type Output = $t;
            fn sub(self, other: $t) -> $t {
                $t(self.0 - other.0)
            }
        }

        impl std::ops::AddAssign for $t {
            fn add_assign(&mut self, other: $t) {
                self.0 += other.0;
            }
        }

        impl std::ops::Mul<f64> for $t {
            type Output = $t;
            fn mul(self, factor: f64) -> $t {
                $t(self.0 * factor)
            }
        }

        impl std::ops::MulAssign<f64> for $t {
            fn mul_assign(&mut self, factor: f64) {
                self.0 *= factor;
            }
        }

        impl std::ops::Div<f64> for $t {
            type Output = $t;
            fn div(self, divisor: f64) -> $t {
                $t(self.0 / divisor)
            }
        }

        impl std::iter::Sum for $t {
            fn sum<I: Iterator<Item = $t>>(iter: I) -> $t {
                $t(iter.map(|a| a.0).sum())
            }
        }
    };
}

quantity_ops!(Amount);
quantity_ops!(Share);

/// For formatting and arithmetic at the edges.
impl From<Amount> for f64 {
    fn from(amount: Amount) -> f64 {
        amount.0
    }
}

impl From<Share> for f64 {
    fn from(share: Share) -> f64 {
        share.0
    }
}

/// A share of a whole, 0..=1 (a site's part of the attributed growth). Serialized as the bare
/// number.
///
/// ```compile_fail
/// use leak_monitor::resource::{Amount, Share};
/// let share: Share = Amount(4096.0); // an amount is not a share
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Share(pub f64);

impl Share {
    /// `part` of `whole`; zero when the whole is not positive.
    pub fn of(part: f64, whole: f64) -> Share {
        Share(if whole > 0.0 { part / whole } else { 0.0 })
    }

    /// This share of `whole`.
    pub fn of_amount(self, whole: Amount) -> Amount {
        Amount(self.0 * whole.0)
    }

    /// As a percentage, for people.
    pub fn percent(self) -> f64 {
        self.0 * 100.0
    }
}

/// A span of time in seconds: how long until a limit, how long something was observed. Keeps
/// seconds from being mixed up with amounts and rates; serialized as the bare number.
///
/// ```compile_fail
/// use leak_monitor::resource::{PerSecond, Seconds};
/// let time_to_limit: Seconds = PerSecond(2.0); // a rate is not a time
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seconds(pub f64);

impl Seconds {
    pub fn is_finite(self) -> bool {
        self.0.is_finite()
    }

    pub fn from_duration(duration: std::time::Duration) -> Seconds {
        Seconds(duration.as_secs_f64())
    }
}

/// For formatting (`humanize::duration`) and arithmetic at the edges.
impl From<Seconds> for f64 {
    fn from(seconds: Seconds) -> f64 {
        seconds.0
    }
}

/// A growth rate: the resource's unit (bytes, or a count of fds, sockets, threads) per second.
/// Serialized as the bare number.
///
/// ```compile_fail
/// use leak_monitor::resource::PerSecond;
/// let amount: f64 = 3.0;
/// let grown = PerSecond(2.0) + amount; // a rate and an amount do not add
/// ```
///
/// ```
/// use leak_monitor::resource::{Amount, PerSecond, Seconds};
/// assert_eq!(PerSecond(2.0).over(Seconds(30.0)), Amount(60.0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerSecond(pub f64);

impl PerSecond {
    pub const ZERO: PerSecond = PerSecond(0.0);

    /// What this rate adds up to over `span`, in the resource's unit.
    pub fn over(self, span: Seconds) -> Amount {
        Amount(self.0 * span.0)
    }
}

impl std::ops::Mul<f64> for PerSecond {
    type Output = PerSecond;
    fn mul(self, factor: f64) -> PerSecond {
        PerSecond(self.0 * factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_display_picks_a_readable_unit() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(3 * 1024 * 1024 * 1024).to_string(), "3.0 GiB");
    }

    #[test]
    fn units_serialize_as_bare_numbers() {
        assert_eq!(json(&Seconds(3228.1)), "3228.1");
        assert_eq!(json(&PerSecond(-0.25)), "-0.25");
        assert_eq!(json(&Some(Seconds(1.5))), "1.5");
        assert_eq!(json(&None::<PerSecond>), "null");
        assert_eq!(json(&Bytes(4096)), "4096");
        let back: PerSecond = serde_json::from_str("2603827.2").unwrap_or_default();
        assert_eq!(back, PerSecond(2_603_827.2));
    }

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).unwrap_or_default()
    }

    #[test]
    fn resource_names_match_the_contract() {
        let names: Vec<_> = Resource::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["rss_bytes", "open_fds", "sockets", "threads"]);
        assert_eq!(
            serde_json::to_string(&Resource::OpenFds).unwrap_or_default(),
            "\"open_fds\""
        );
    }
}
