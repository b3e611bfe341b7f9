//! Database URLs: what they point at, and keeping their passwords out of
//! every message.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// What a database URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    SqliteFile(PathBuf),
    SqliteMemory,
    Postgres(String),
}

pub(crate) fn parse_url(url: &str) -> Result<Target> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: redact(url),
        reason: reason.to_string(),
    };
    if url.trim().is_empty() {
        return Err(Error::InvalidUrl {
            url: String::new(),
            reason: "give a file path, sqlite://PATH, sqlite::memory: or postgres://user@host/db"
                .into(),
        });
    }
    if url.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    // The scheme as the `url` crate reads it (case-insensitive). A
    // PostgreSQL URL that the crate cannot parse is still libpq's to judge:
    // libpq accepts forms WHATWG URLs do not (`postgres://h1:5432,h2:5433/db`).
    let scheme = match ::url::Url::parse(url) {
        Ok(parsed) => Some(parsed.scheme().to_string()),
        Err(_) => url
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase()),
    };
    if matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
        return Ok(Target::Postgres(url.to_string()));
    }
    if matches!(url, "sqlite::memory:" | ":memory:" | "sqlite://:memory:") {
        return Ok(Target::SqliteMemory);
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if let Some((scheme, _)) = url.split_once("://") {
        return Err(invalid(&format!(
            "unknown scheme `{scheme}` (use sqlite://PATH, a file path, sqlite::memory: or postgres://...)"
        )));
    } else {
        url
    };
    if path.is_empty() {
        return Err(invalid("no file path after the scheme"));
    }
    Ok(Target::SqliteFile(PathBuf::from(path)))
}

/// Byte ranges of the secrets in a URL: the password of
/// `scheme://user:password@host`, and the value of every `password=`
/// parameter (a fuzzer found a second one slipping by an earlier version).
fn password_spans(url: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let rest = scheme_end + 3;
        // The user information ends at the *last* `@`: a password may hold
        // an unencoded `/`, `?`, `#` or `@`, and a host never has an `@`.
        // (An `@` in a query string only makes the redaction wider.)
        if let Some(at) = url[rest..].rfind('@') {
            if let Some(colon) = url[rest..rest + at].find(':') {
                spans.push(rest + colon + 1..rest + at);
            }
        }
    }
    let mut from = 0;
    while let Some(pos) = url[from..].find("password=") {
        let start = from + pos + "password=".len();
        let end = url[start..]
            .find(['&', ' '])
            .map_or(url.len(), |i| start + i);
        if spans.last().is_none_or(|last| last.end <= start) {
            spans.push(start..end);
        }
        from = start;
    }
    spans
}

/// The URL as the `url` crate reads it, with its password and every
/// `password` query parameter set to `***`; `None` if it does not parse.
fn redact_parsed(url: &str) -> Option<String> {
    let mut parsed = ::url::Url::parse(url).ok()?;
    if parsed.password().is_some() {
        parsed.set_password(Some("***")).ok()?;
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { "***".into() } else { v };
                (k.into_owned(), v.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Some(parsed.into())
}

/// Replaces every password in a URL by `***`: the `url` crate's reading
/// where the URL parses, then the hand-written spans over the result (a
/// password with an unencoded `/`, `?` or `#` does not parse as a URL, and
/// libpq's multi-host URLs do not either).
pub(crate) fn redact(url: &str) -> String {
    let parsed = redact_parsed(url).unwrap_or_else(|| url.to_string());
    let mut out = parsed.clone();
    for span in password_spans(&parsed).into_iter().rev() {
        out.replace_range(span, "***");
    }
    out
}

/// Every form of the URL's passwords a message could quote: as written,
/// and percent-decoded as the `url` crate reads them.
fn passwords(url: &str) -> Vec<String> {
    let mut out: Vec<String> = password_spans(url)
        .into_iter()
        .map(|span| url[span].to_string())
        .collect();
    if let Ok(parsed) = ::url::Url::parse(url) {
        if let Some(pw) = parsed.password() {
            out.push(pw.to_string());
            out.push(
                percent_encoding::percent_decode_str(pw)
                    .decode_utf8_lossy()
                    .into_owned(),
            );
        }
        out.extend(
            parsed
                .query_pairs()
                .filter(|(k, _)| k == "password")
                .map(|(_, v)| v.into_owned()),
        );
    }
    out.retain(|pw| !pw.is_empty());
    out.sort();
    out.dedup();
    out
}

/// Removes every occurrence of the URL's passwords from a driver message,
/// in one left-to-right pass (replacing password by password could feed a
/// password like `*` its own `***`: a fuzzer found that blow-up).
pub(crate) fn scrub(message: &str, url: &str) -> String {
    let mut passwords = passwords(url);
    if passwords.is_empty() {
        return message.to_string();
    }
    // Longest first, so a password containing another is replaced whole.
    passwords.sort_by_key(|pw| std::cmp::Reverse(pw.len()));
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        match passwords.iter().find(|pw| rest.starts_with(pw.as_str())) {
            Some(pw) => {
                out.push_str("***");
                rest = &rest[pw.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// For fuzzing: parsing never panics; no alphanumeric password survives
/// redaction of a URL, nor scrubbing of a message that quotes the URL.
#[doc(hidden)]
#[allow(clippy::panic)]
pub(crate) fn check_url_invariants(text: &str) {
    let _ = parse_url(text);
    let redacted = redact(text);
    let scrubbed = scrub(text, text);
    for span in password_spans(text) {
        let pw = &text[span];
        // Alphanumeric passwords only: `***` and its neighbours cannot form them.
        if !pw.is_empty() && pw.chars().all(char::is_alphanumeric) && text.matches(pw).count() == 1
        {
            assert!(!redacted.contains(pw), "password survived redaction");
            assert!(!scrubbed.contains(pw), "password survived scrubbing");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("sqlite::memory:").ok(),
            Some(Target::SqliteMemory)
        );
        assert_eq!(
            parse_url("sqlite://runs.db").ok(),
            Some(Target::SqliteFile("runs.db".into()))
        );
        assert_eq!(
            parse_url("/tmp/x.db").ok(),
            Some(Target::SqliteFile("/tmp/x.db".into()))
        );
        assert!(matches!(
            parse_url("mysql://u:secret@h/db"),
            Err(Error::InvalidUrl { url, .. }) if !url.contains("secret")
        ));
        assert!(parse_url("").is_err());
        assert!(parse_url("sqlite://").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:hunter2@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(
            redact("postgres://db/x?password=hunter2&sslmode=off"),
            "postgres://db/x?password=***&sslmode=off"
        );
        assert_eq!(
            scrub("failed for hunter2", "postgres://bob:hunter2@db/x"),
            "failed for ***"
        );
        assert_eq!(
            redact("postgres://db/x?password=a1&password=b2"),
            "postgres://db/x?password=***&password=***"
        );
        // Reserved characters, unencoded, in the password.
        for pw in ["a/b", "a?b", "a#b", "a@b", "a:b", "p/w?x#y@z", "%2F", "a b"] {
            let url = format!("postgres://bob:{pw}@db:5432/x?sslmode=off");
            let red = redact(&url);
            assert!(!red.contains(pw), "{url} -> {red}");
            assert!(red.starts_with("postgres://bob:***@db:5432/x"), "{red}");
            assert_eq!(scrub(&format!("failed for {pw}!"), &url), "failed for ***!");
        }
        // Percent-encoded passwords: redacted, and scrubbed in both forms.
        let url = "postgres://bob:p%2Fw%40x@db/x?sslmode=off";
        assert_eq!(redact(url), "postgres://bob:***@db/x?sslmode=off");
        assert_eq!(scrub("a p/w@x b p%2Fw%40x", url), "a *** b ***");
        // Upper-case scheme; a `password` parameter beside a user password.
        let url = "POSTGRES://bob:hunter2@db/x?password=s3cret&sslmode=off";
        assert!(matches!(parse_url(url), Ok(Target::Postgres(_))));
        let red = redact(url);
        assert!(!red.contains("hunter2") && !red.contains("s3cret"), "{red}");
        // libpq's multi-host form is not a WHATWG URL: still redacted.
        assert_eq!(
            redact("postgres://bob:hunter2@h1:5432,h2:5433/x"),
            "postgres://bob:***@h1:5432,h2:5433/x"
        );
        // The input the fuzzer found.
        check_url_invariants(
            "** =[`\0[Q[`\n=+`=4ooopassword=password=****** \n2\n=0[o0ooopassword=**\n",
        );
    }
}
