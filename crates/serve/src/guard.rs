//! Who may ask what: the token, the `Host` check, the write rules and the security headers every
//! answer carries.
//!
//! - With a token, a request carries it as `Authorization: Bearer TOKEN` or in the
//!   `tickwatch_token` cookie. Opening `/?token=TOKEN` sets that cookie (HttpOnly, SameSite=Strict)
//!   and redirects to `/`, so the token leaves the address bar and the page's own requests carry
//!   it. A wrong or missing token gets 401.
//! - Without a token the board listens on loopback only, and a request whose `Host` is not a
//!   loopback name or address gets 403: a page of another site that points its own name at
//!   127.0.0.1 (DNS rebinding) cannot read the board.
//! - A write (any method but GET and HEAD) needs `Content-Type: application/json` and
//!   `X-Tickwatch-Request: 1`; a cross-site form or simple request can send neither, and a
//!   script of another origin would need a CORS preflight that this server never grants. An
//!   `Origin`, when sent, must be this server's.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use crate::api::{ApiError, Shared};

/// Shortest token accepted.
pub const TOKEN_LEN_MIN: usize = 16;

/// Longest token accepted.
pub const TOKEN_LEN_MAX: usize = 256;

/// The cookie that carries the token.
const TOKEN_COOKIE: &str = "tickwatch_token";

/// The header every write must carry.
pub const WRITE_HEADER: &str = "x-tickwatch-request";

/// The Content-Security-Policy of every answer: the page's own script and style only, no inline
/// code, no framing, requests to this origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A secret every request must carry: 16 to 256 characters of `A-Z a-z 0-9 . _ ~ -` (what an
/// address, a header and a cookie all carry unchanged; `openssl rand -hex 32` makes one).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Why a token is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Too short or too long.
    #[error("token: must be {TOKEN_LEN_MIN} to {TOKEN_LEN_MAX} characters, got {0}")]
    Length(usize),
    /// A character outside the allowed set.
    #[error("token: only A-Z a-z 0-9 . _ ~ - are allowed (`openssl rand -hex 32` makes one)")]
    Character,
}

impl Token {
    /// Validates a token.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let len = text.chars().count();
        if !(TOKEN_LEN_MIN..=TOKEN_LEN_MAX).contains(&len) {
            return Err(TokenError::Length(len));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
        {
            return Err(TokenError::Character);
        }
        Ok(Token(text.to_owned()))
    }

    /// Whether `offered` is this token, in time that does not depend on where they differ.
    fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The middleware: checks the request, then adds the security headers to the answer.
pub(crate) async fn guard(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match check(&shared, &request) {
        Ok(()) => next.run(request).await,
        Err(Refusal::SignIn) => match &shared.token {
            Some(token) => sign_in(token),
            None => unauthorized(),
        },
        Err(Refusal::Unauthorized) => unauthorized(),
        Err(Refusal::Forbidden(error)) => error.into_response(),
    };
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// Why a request is not served.
enum Refusal {
    /// The right token in the address: set the cookie and go to the page.
    SignIn,
    /// No token, or the wrong one.
    Unauthorized,
    /// Not from where it may come, or a write without its headers.
    Forbidden(ApiError),
}

fn check(shared: &Shared, request: &Request) -> Result<(), Refusal> {
    let headers = request.headers();
    match &shared.token {
        None => {
            if !host_is_loopback(headers) {
                return Err(Refusal::Forbidden(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "host",
                    "this board answers only to localhost, 127.0.0.1 or [::1] (a token lets it answer to other names)",
                )));
            }
        }
        Some(token) => {
            if let Some(offered) = query_token(request)
                && request.method() == Method::GET
                && request.uri().path() == "/"
            {
                return Err(if token.matches(offered) {
                    Refusal::SignIn
                } else {
                    Refusal::Unauthorized
                });
            }
            if !carries(token, headers) {
                return Err(Refusal::Unauthorized);
            }
        }
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        check_write(headers)?;
    }
    Ok(())
}

/// Whether the request's `Host` names a loopback address.
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // Strip the port: `[::1]:8080`, `127.0.0.1:8080`, `localhost:8080`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn query_token(request: &Request) -> Option<&str> {
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

fn carries(token: &Token, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|offered| token.matches(offered)) {
        return true;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .any(|offered| token.matches(offered))
}

/// The answer to `/?token=TOKEN`: the cookie, and the page without the token in its address.
fn sign_in(token: &Token) -> Response {
    let cookie = format!(
        "{TOKEN_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        token.0
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    response
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "token",
        "this board needs its token: open /?token=TOKEN once, or send Authorization: Bearer TOKEN",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn check_write(headers: &HeaderMap) -> Result<(), Refusal> {
    let refuse = |reason: &str| {
        Err(Refusal::Forbidden(ApiError::new(
            StatusCode::FORBIDDEN,
            "request",
            reason,
        )))
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return refuse("a write needs Content-Type: application/json");
    }
    if headers.get(WRITE_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return refuse("a write needs the header X-Tickwatch-Request: 1");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let same = host.is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        });
        if !same {
            return refuse("a write must come from this board's own page");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_plain() {
        assert!(Token::parse("0123456789abcdef").is_ok());
        assert!(Token::parse(&"a".repeat(TOKEN_LEN_MAX)).is_ok());
        assert!(matches!(Token::parse("short"), Err(TokenError::Length(5))));
        assert!(matches!(
            Token::parse(&"a".repeat(TOKEN_LEN_MAX + 1)),
            Err(TokenError::Length(_))
        ));
        for bad in ["0123456789abcde;", "0123456789 abcdef", "0123456789abcdé0"] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_matches_only_itself() {
        let token = Token::parse("0123456789abcdef").expect("valid");
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeF"));
        assert!(!token.matches("0123456789abcde"));
        assert!(!token.matches(""));
    }

    #[test]
    fn loopback_hosts() {
        let cases = [
            ("localhost:8080", true),
            ("LOCALHOST", true),
            ("127.0.0.1:9", true),
            ("127.3.2.1", true),
            ("[::1]:8080", true),
            ("[::1]", true),
            ("example.com", false),
            ("localhost.example.com:8080", false),
            ("10.0.0.1:8080", false),
            ("[::2]:80", false),
            ("", false),
        ];
        for (host, loopback) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(host).expect("header"));
            assert_eq!(host_is_loopback(&headers), loopback, "{host}");
        }
        assert!(!host_is_loopback(&HeaderMap::new()), "no Host at all");
    }
}
