//! Numbers for people: durations ("4 h 12 min"), amounts and rates in the resource's unit
//! ("2.5 MiB/s"), percentages. Pure formatting, shared by the reports and the live views.

use crate::resource::{Bytes, PerSecond, Unit};

/// A duration in its two largest units: `4 h 12 min`, `53 min 48 s`, `3 d 4 h`; below ten
/// seconds with a tenth (`9.5 s`), below one second in milliseconds (`500 ms`).
pub fn duration(seconds: impl Into<f64>) -> String {
    let seconds: f64 = seconds.into();
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".to_string();
    }
    if seconds < 1.0 {
        return format!("{:.0} ms", seconds * 1000.0);
    }
    if seconds < 10.0 && seconds.fract() >= 0.05 && seconds.fract() < 0.95 {
        return format!("{seconds:.1} s");
    }
    const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)];
    // Whole seconds; far beyond any limit a report talks about, days just keep counting.
    let mut rest = seconds.round().min(u64::MAX as f64) as u64;
    let mut parts = Vec::with_capacity(2);
    for (name, size) in UNITS {
        let amount = rest / size;
        rest %= size;
        if amount > 0 || !parts.is_empty() {
            parts.push((amount, name));
        }
        if parts.len() == 2 {
            break;
        }
    }
    // A zero second part says nothing: "2 h", not "2 h 0 min".
    if parts.len() == 2 && parts[1].0 == 0 {
        parts.pop();
    }
    parts
        .iter()
        .map(|(amount, name)| format!("{amount} {name}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An amount in the resource's unit: `174.0 MiB`, `48`.
pub fn amount(unit: Unit, value: impl Into<f64>) -> String {
    let value: f64 = value.into();
    let sign = if value < 0.0 { "-" } else { "" };
    match unit {
        Unit::Bytes => format!("{sign}{}", Bytes(value.abs().round() as u64)),
        Unit::Count => format!("{sign}{}", count(value.abs())),
    }
}

/// A growth rate per second and per minute: `2.5 MiB/s (148.9 MiB/min)`, `0.25/s (15/min)`.
pub fn rate(unit: Unit, rate: PerSecond) -> String {
    let per_second = rate.0;
    let per_minute = per_second * 60.0;
    match unit {
        Unit::Bytes => format!(
            "{}/s ({}/min)",
            amount(unit, per_second),
            amount(unit, per_minute)
        ),
        Unit::Count => format!(
            "{}/s ({}/min)",
            signed_count(per_second),
            signed_count(per_minute)
        ),
    }
}

/// A share or confidence in 0..=1 as a whole percentage: `93 %`.
pub fn percent(fraction: impl Into<f64>) -> String {
    format!("{:.0} %", fraction.into() * 100.0)
}

fn signed_count(value: f64) -> String {
    let sign = if value < 0.0 { "-" } else { "" };
    format!("{sign}{}", count(value.abs()))
}

/// Counts are whole, rates of counts are not: as many decimals as a small value needs.
fn count(value: f64) -> String {
    let text = if value >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A short signed rate for tables: `+1.0 MiB/s`, `-0.25/s`.
pub fn per_second(unit: Unit, rate: PerSecond) -> String {
    let per_second = rate.0;
    let sign = if per_second < 0.0 { "-" } else { "+" };
    let magnitude = match unit {
        Unit::Bytes => amount(unit, per_second.abs()),
        Unit::Count => count(per_second.abs()),
    };
    format!("{sign}{magnitude}/s")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(duration(4.0 * 3600.0 + 12.0 * 60.0), "4 h 12 min");
        assert_eq!(duration(3228.1), "53 min 48 s");
        assert_eq!(duration(7200.0), "2 h");
        assert_eq!(duration(90_000.0), "1 d 1 h");
        assert_eq!(duration(400.0 * 86_400.0 + 59.0), "400 d");
        assert_eq!(duration(59.0), "59 s");
        assert_eq!(duration(60.0), "1 min");
        assert_eq!(duration(1.0), "1 s");
        assert_eq!(duration(9.5), "9.5 s");
        assert_eq!(duration(0.5), "500 ms");
        assert_eq!(duration(f64::INFINITY), "unknown");
        assert_eq!(duration(-1.0), "unknown");
    }

    #[test]
    fn amounts_and_rates_carry_their_unit() {
        assert_eq!(amount(Unit::Bytes, 182_452_224.0), "174.0 MiB");
        assert_eq!(amount(Unit::Count, 48.0), "48");
        assert_eq!(
            rate(Unit::Bytes, PerSecond(2_603_827.2)),
            "2.5 MiB/s (149.0 MiB/min)"
        );
        assert_eq!(
            rate(Unit::Bytes, PerSecond(-1024.0)),
            "-1.0 KiB/s (-60.0 KiB/min)"
        );
        assert_eq!(rate(Unit::Count, PerSecond(0.25)), "0.25/s (15/min)");
        assert_eq!(rate(Unit::Count, PerSecond(0.0125)), "0.01/s (0.75/min)");
        assert_eq!(rate(Unit::Count, PerSecond(12.34)), "12.3/s (740/min)");
        assert_eq!(percent(0.99), "99 %");
    }
}
