//! How the user says which processes to follow: `--pid PID`, `--match [NAME=]REGEX`,
//! `--python`.

use super::TargetError;
use regex::Regex;

#[derive(Clone, Debug)]
pub enum Selector {
    Pid(i32),
    /// Processes whose command line, joined with spaces, matches `regex`; `name` is their group
    /// (the `target` label), else each process's own name.
    Match {
        name: Option<String>,
        regex: Regex,
    },
    /// Every CPython process.
    Python,
    /// Processes whose container id, or `NAMESPACE/POD` when known, matches `regex`
    /// (`--match-container`).
    Container {
        name: Option<String>,
        regex: Regex,
    },
    /// Processes whose systemd unit or scope matches `regex` (`--match-unit`).
    Unit {
        name: Option<String>,
        regex: Regex,
    },
}

/// Which `--match*` flag a pattern came from, for the selector it builds and its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOn {
    CommandLine,
    Container,
    Unit,
}

impl MatchOn {
    pub fn flag(self) -> &'static str {
        match self {
            MatchOn::CommandLine => "--match",
            MatchOn::Container => "--match-container",
            MatchOn::Unit => "--match-unit",
        }
    }
}

impl Selector {
    /// Parses a `--match` argument: `REGEX`, or `NAME=REGEX` where NAME is
    /// `[A-Za-z_][A-Za-z0-9_.-]*`. Text before the first `=` that is not such a name belongs to
    /// the regex (`a(b=c)` is one regex). An empty regex would follow every process, so it is
    /// refused.
    pub fn parse_match(arg: &str) -> Result<Selector, TargetError> {
        Self::parse(MatchOn::CommandLine, arg)
    }

    /// Parses the argument of `--match`, `--match-container` or `--match-unit`, all of the
    /// form `[NAME=]REGEX`.
    pub fn parse(on: MatchOn, arg: &str) -> Result<Selector, TargetError> {
        let (name, pattern) = split_group_name(arg);
        let bad = |reason: String| TargetError::BadRegex {
            flag: on.flag(),
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.is_empty() {
            return Err(bad("an empty pattern matches every process".to_owned()));
        }
        let regex = Regex::new(pattern).map_err(|err| bad(one_line(&err.to_string())))?;
        let name = name.map(str::to_owned);
        Ok(match on {
            MatchOn::CommandLine => Selector::Match { name, regex },
            MatchOn::Container => Selector::Container { name, regex },
            MatchOn::Unit => Selector::Unit { name, regex },
        })
    }
}

/// `NAME=REGEX` -> (Some(NAME), REGEX); anything else -> (None, whole).
pub fn split_group_name(arg: &str) -> (Option<&str>, &str) {
    match arg.split_once('=') {
        Some((name, pattern)) if is_group_name(name) => (Some(name), pattern),
        _ => (None, arg),
    }
}

fn is_group_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// regex errors span several lines (pattern, caret, message); keep the message on one.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect();
    lines.last().copied().unwrap_or("invalid regex").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(arg: &str) -> (Option<String>, String) {
        match Selector::parse_match(arg).unwrap() {
            Selector::Match { name, regex } => (name, regex.as_str().to_owned()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_regex_and_named_regex() {
        assert_eq!(parts("gunicorn.*worker"), (None, "gunicorn.*worker".into()));
        assert_eq!(
            parts("web=gunicorn.*worker"),
            (Some("web".into()), "gunicorn.*worker".into())
        );
        assert_eq!(
            parts("_api.v2-x=python app=1"),
            (Some("_api.v2-x".into()), "python app=1".into())
        );
    }

    #[test]
    fn container_and_unit_selectors_take_a_group_name() {
        match Selector::parse(MatchOn::Container, "api=^[0-9a-f]{12}").unwrap() {
            Selector::Container { name, regex } => {
                assert_eq!(name.as_deref(), Some("api"));
                assert_eq!(regex.as_str(), "^[0-9a-f]{12}");
            }
            other => panic!("{other:?}"),
        }
        match Selector::parse(MatchOn::Unit, "web.*\\.service").unwrap() {
            Selector::Unit { name, regex } => {
                assert_eq!(name, None);
                assert!(regex.is_match("web-api.service"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_before_equals_that_is_no_name_belongs_to_the_regex() {
        assert_eq!(parts("a(b=c)"), (None, "a(b=c)".into()));
        assert_eq!(parts("9x=y"), (None, "9x=y".into()));
        assert_eq!(parts("=y"), (None, "=y".into()));
        assert_eq!(parts("a b=c"), (None, "a b=c".into()));
    }

    #[test]
    fn bad_and_empty_regexes_are_one_line_errors() {
        for arg in ["web=(", "[", "", "web="] {
            let err = Selector::parse_match(arg).unwrap_err();
            assert!(matches!(err, TargetError::BadRegex { .. }), "{arg:?}");
            let message = err.to_string();
            assert!(!message.contains('\n'), "{message}");
            assert!(message.contains("--match"), "{message}");
        }
        let message = Selector::parse(MatchOn::Unit, "(").unwrap_err().to_string();
        assert!(message.starts_with("bad --match-unit regex"), "{message}");
        let message = Selector::parse_match("web=(").unwrap_err().to_string();
        assert!(message.contains("unclosed group"), "{message}");
    }
}
