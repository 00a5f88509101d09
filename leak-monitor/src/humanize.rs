//! Numbers for people: durations, rates. Shared by the reports and the live views.

use crate::resource::Unit;

/// `45 s`, `12 min 5 s`, `4 h 12 min`, `3 d 2 h`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "unknown".to_string();
    }
    let s = seconds.round() as u64;
    let (d, h, m, sec) = (s / 86_400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec} s"),
        (0, 0, _) => format!("{m} min {sec} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// A signed rate per second in the unit, e.g. `+1.0 MiB/s`, `-3/s`, `+0.2/s`.
pub fn rate(unit: Unit, per_second: f64) -> String {
    let sign = if per_second < 0.0 { "-" } else { "+" };
    let magnitude = per_second.abs();
    let amount = match unit {
        Unit::Count if magnitude < 10.0 => format!("{magnitude:.2}"),
        _ => unit.format(magnitude),
    };
    format!("{sign}{amount}/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(45.2), "45 s");
        assert_eq!(duration(725.0), "12 min 5 s");
        assert_eq!(duration(4.0 * 3600.0 + 12.0 * 60.0), "4 h 12 min");
        assert_eq!(duration(3.0 * 86_400.0 + 7300.0), "3 d 2 h");
        assert_eq!(duration(f64::NAN), "unknown");
    }

    #[test]
    fn rates_carry_sign_and_unit() {
        assert_eq!(rate(Unit::Bytes, 1024.0 * 1024.0), "+1.0 MiB/s");
        assert_eq!(rate(Unit::Count, -0.5), "-0.50/s");
        assert_eq!(rate(Unit::Count, 20.0), "+20/s");
    }
}
