//! A PostgreSQL URL, parsed once, handed to libpq as keyword/value pairs.
//!
//! libpq reads a URL by rules of its own: an unencoded `/`, `?`, `#` or `@`
//! in a password moves where it thinks the host, port or database begin, and
//! its messages then quote pieces of the password ("invalid integer value
//! "Head" for connection option "port""). So simdb parses the URL itself —
//! with the `url` crate, or for libpq's multi-host form
//! (`postgres://h1:5432,h2:5433/db`) by the same rules by hand — and gives
//! libpq `host='…' port='…' user='…' password='…' dbname='…'`, which it
//! reads exactly as written. What libpq reads is what simdb parsed.
//!
//! A URL simdb cannot read one way only is refused with a message that
//! quotes no part of its user information.

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// The keyword/value pairs of a PostgreSQL URL, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnInfo {
    pairs: Vec<(String, String)>,
}

fn refuse(reason: &str) -> Error {
    Error::InvalidUrl {
        // Nothing of the user information: not even redacted, since a
        // misread URL's "password" boundary is exactly what is in doubt.
        url: "postgres://…".into(),
        reason: reason.to_string(),
    }
}

const ENCODE: &str = "percent-encode reserved characters in the user name and password \
     (`/` %2F, `?` %3F, `#` %23, `@` %40, `:` %3A, `%` %25, `[` %5B, `]` %5D, space %20)";

fn decode(part: &str) -> Result<String> {
    // A `%` must start an escape: `50%off` is not one simdb reads one way.
    let bytes = part.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(refuse(&format!("a `%` that starts no escape; {ENCODE}")));
            }
        }
    }
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| refuse("the user information is not UTF-8 once decoded"))
}

impl ConnInfo {
    /// Parses `postgres://[user[:password]@][host][:port][,host[:port]…][/dbname][?key=value&…]`.
    pub(crate) fn parse(url: &str) -> Result<ConnInfo> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| refuse("not a postgres:// URL"))?;
        if !matches!(
            scheme.to_ascii_lowercase().as_str(),
            "postgres" | "postgresql"
        ) {
            return Err(refuse("not a postgres:// URL"));
        }
        // The authority ends at the first `/`, `?` or `#`; the user
        // information is what precedes its `@`. More than one `@`, or one
        // after a `/`, `?` or `#`, can be read two ways: refused.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let ats = rest.matches('@').count();
        if ats > 1 || (ats == 1 && !authority.contains('@')) {
            return Err(refuse(&format!(
                "the user information holds a reserved character; {ENCODE}"
            )));
        }
        if tail.contains('#') {
            return Err(refuse(&format!("a `#` in the URL; {ENCODE}")));
        }
        let (userinfo, hosts) = match authority.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut pairs = Vec::new();
        if let Some(userinfo) = userinfo {
            if userinfo.contains(['[', ']', ' ']) {
                return Err(refuse(&format!(
                    "the user information holds a reserved character; {ENCODE}"
                )));
            }
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                pairs.push(("user".to_string(), decode(user)?));
            }
            if let Some(password) = password {
                pairs.push(("password".to_string(), decode(password)?));
            }
        }
        if !hosts.is_empty() {
            let (mut host_list, mut port_list) = (Vec::new(), Vec::new());
            for h in hosts.split(',') {
                let (host, port) = split_host_port(h)?;
                host_list.push(decode(host)?);
                port_list.push(port.to_string());
            }
            if host_list.iter().any(|h| !h.is_empty()) {
                pairs.push(("host".to_string(), host_list.join(",")));
            }
            if port_list.iter().any(|p| !p.is_empty()) {
                pairs.push(("port".to_string(), port_list.join(",")));
            }
        }
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        let dbname = path.strip_prefix('/').unwrap_or(path);
        if !dbname.is_empty() {
            pairs.push(("dbname".to_string(), decode(dbname)?));
        }
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| refuse("a query parameter without `=`"))?;
            let key = decode(key)?;
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(refuse(
                    "a query parameter whose name is not a libpq keyword",
                ));
            }
            let value = decode(value)?;
            match pairs.iter_mut().find(|(k, _)| *k == key) {
                Some(existing) => existing.1 = value,
                None => pairs.push((key, value)),
            }
        }
        Ok(ConnInfo { pairs })
    }

    /// The value of `key`, if set.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` unless the URL set it.
    pub(crate) fn set_default(&mut self, key: &str, value: &str) {
        if self.get(key).is_none() {
            self.pairs.push((key.to_string(), value.to_string()));
        }
    }

    /// libpq's keyword/value connection string: every value single-quoted,
    /// `\` and `'` escaped with a backslash.
    pub(crate) fn to_libpq(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `host[:port]`, where an IPv6 host is bracketed (`[::1]:5432`).
fn split_host_port(h: &str) -> Result<(&str, &str)> {
    if let Some(rest) = h.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| refuse("an unclosed `[` in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => "",
            None => return Err(refuse("text after a bracketed host")),
        };
        check_port(port)?;
        return Ok((host, port));
    }
    let (host, port) = h.rsplit_once(':').unwrap_or((h, ""));
    check_port(port)?;
    Ok((host, port))
}

fn check_port(port: &str) -> Result<()> {
    if port.is_empty() || (port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit())) {
        Ok(())
    } else {
        Err(refuse(&format!("a port that is not a number; {ENCODE}")))
    }
}

#[cfg(test)]
mod tests {
    use super::ConnInfo;

    #[test]
    fn reads_urls_as_libpq_keywords() -> crate::Result<()> {
        let c = ConnInfo::parse("postgres://u:p%2Fw@db.internal:5433/sims?sslmode=disable")?;
        assert_eq!(
            c.to_libpq(),
            "user='u' password='p/w' host='db.internal' port='5433' dbname='sims' sslmode='disable'"
        );
        let multi = ConnInfo::parse("postgresql://h1:5432,h2:5433/db")?;
        assert_eq!(
            multi.to_libpq(),
            "host='h1,h2' port='5432,5433' dbname='db'"
        );
        let v6 = ConnInfo::parse("postgres://u@[::1]:5432/x")?;
        assert_eq!(v6.get("host"), Some("::1"));
        let quoted = ConnInfo::parse("postgres://u:it%27s%5C@h/x")?;
        assert_eq!(quoted.get("password"), Some("it's\\"));
        assert!(quoted.to_libpq().contains(r"password='it\'s\\'"));
        Ok(())
    }

    #[test]
    fn refuses_what_reads_two_ways_without_quoting_it() {
        for url in [
            "postgres://u:Head/Tail@127.0.0.1:5432/x",
            "postgres://u:Head@Tail@127.0.0.1:5432/x",
            "postgres://u:Head?Tail@127.0.0.1:5432/x",
            "postgres://u:Head#Tail@127.0.0.1:5432/x",
            "postgres://u:Head Tail@127.0.0.1:5432/x",
            "postgres://u:Head[Tail@127.0.0.1:5432/x",
            "postgres://u:50%offTail@127.0.0.1:5432/x",
        ] {
            let e = ConnInfo::parse(url)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!e.is_empty(), "{url} was accepted");
            assert!(!e.contains("Head") && !e.contains("Tail"), "{e}");
        }
    }
}
