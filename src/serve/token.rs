//! The dashboard's access token, for a dashboard others can reach: every
//! request must carry it — as `?token=` (answered with a session cookie
//! and a redirect to the same address without it, so the token leaves the
//! address bar and the history), as `Authorization: Bearer`, or as that
//! cookie (`HttpOnly`, `SameSite=Strict`). Anything else is 401 with a
//! body that reveals nothing. Tokens are compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The cookie that carries the token after the first request.
const COOKIE: &str = "simdb_token";
/// Characters of a token given by the user, at least.
const MIN_CHARS: usize = 16;

/// A secret that every request to the dashboard must carry.
#[derive(Clone)]
pub struct AccessToken(String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(…)")
    }
}

impl AccessToken {
    /// A new token: 32 bytes from the operating system's random source, as
    /// 64 hex digits.
    ///
    /// # Errors
    /// [`Error::Io`] if the random source fails.
    pub fn generate() -> Result<AccessToken> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Io {
            path: "random source".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(AccessToken(
            bytes.iter().map(|b| format!("{b:02x}")).collect(),
        ))
    }

    /// A token chosen by the user (a `--token-file`'s content, surrounding
    /// whitespace removed).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if it is shorter than 16 characters or holds
    /// anything but ASCII letters, digits, `-`, `_` and `.` (it travels in
    /// an address and a cookie).
    pub fn new(token: &str) -> Result<AccessToken> {
        let token = token.trim();
        if token.chars().count() < MIN_CHARS {
            return Err(Error::invalid(
                "token",
                format!("is shorter than {MIN_CHARS} characters"),
            ));
        }
        if !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::invalid(
                "token",
                "may hold only ASCII letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(AccessToken(token.to_string()))
    }

    /// The token's text (to show the user once).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn matches(&self, given: &str) -> bool {
        self.0.as_bytes().ct_eq(given.as_bytes()).into()
    }
}

/// The token a request's query string carries, and the query without it.
fn from_query(query: &str) -> (Option<String>, String) {
    let mut token = None;
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "token" {
            token = Some(v.into_owned());
        } else {
            rest.append_pair(&k, &v);
        }
    }
    (token, rest.finish())
}

/// The token a request's cookies or `Authorization` header carry.
fn from_headers(request: &Request) -> Option<String> {
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                pair.trim()
                    .strip_prefix(&format!("{COOKIE}="))
                    .map(str::to_string)
            })
    })
}

/// The middleware: lets a request with the token through, answers 401
/// otherwise.
pub(crate) async fn require(
    State(token): State<Arc<AccessToken>>,
    request: Request,
    next: Next,
) -> Response {
    if from_headers(&request).is_some_and(|t| token.matches(&t)) {
        return next.run(request).await;
    }
    let (given, rest) = from_query(request.uri().query().unwrap_or(""));
    if given.is_some_and(|t| token.matches(&t)) {
        // The session cookie, and the same address without the token.
        let path = request.uri().path();
        let location = if rest.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{rest}")
        };
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            token.as_str()
        );
        let (Ok(location), Ok(cookie)) = (
            HeaderValue::from_str(&location),
            HeaderValue::from_str(&cookie),
        ) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        "401 unauthorized: this dashboard needs its access token\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::{from_query, AccessToken};

    #[test]
    fn tokens_are_checked_and_taken_out_of_the_query() -> crate::Result<()> {
        let generated = AccessToken::generate()?;
        assert_eq!(generated.as_str().len(), 64);
        assert!(AccessToken::new("short").is_err());
        assert!(AccessToken::new("has space in it 0123456789").is_err());
        let token = AccessToken::new(" abcdefghijklmnop\n")?;
        assert!(token.matches("abcdefghijklmnop"));
        assert!(!token.matches("abcdefghijklmnoq"));
        assert!(!token.matches("abcdefghijklmno"));
        assert!(!format!("{token:?}").contains("abc"));
        let (given, rest) = from_query("from=3&token=abc%2Bd&to=9");
        assert_eq!(given.as_deref(), Some("abc+d"));
        assert_eq!(rest, "from=3&to=9");
        Ok(())
    }
}
