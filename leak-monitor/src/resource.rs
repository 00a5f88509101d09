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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    fn resource_names_match_the_contract() {
        let names: Vec<_> = Resource::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["rss_bytes", "open_fds", "sockets", "threads"]);
        assert_eq!(
            serde_json::to_string(&Resource::OpenFds).unwrap_or_default(),
            "\"open_fds\""
        );
    }
}
