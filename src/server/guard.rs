//! Who may post: the source allow-list and the secret token.
//!
//! RedBrick cannot sign its requests; the URL is the only secret it can carry, as the
//! last path segment (`/redbrick/<token>`) or a `token` query parameter. This module
//! finds the client's address (through trusted proxies), checks both, and hides the
//! token from anything that is logged. The body is not read until both checks pass.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use percent_encoding::percent_decode_str;
use warp::http::{HeaderMap, StatusCode};

use super::ApiError;
use crate::config::Token;

/// How a request path relates to the configured one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Exactly the configured path.
    Base,
    /// The configured path and one more segment: a token, perhaps.
    WithSegment(String),
    /// Elsewhere.
    Other,
}

/// Compares `path` with the configured `base` (no trailing slash).
pub fn match_path(path: &str, base: &str) -> PathMatch {
    let path = path.trim_end_matches('/');
    if path == base {
        return PathMatch::Base;
    }
    match path
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(segment) if !segment.is_empty() && !segment.contains('/') => {
            let decoded = percent_decode_str(segment).decode_utf8_lossy().into_owned();
            PathMatch::WithSegment(decoded)
        }
        _ => PathMatch::Other,
    }
}

/// Checks the token from the path segment or the `token` query parameter. With no token
/// configured, a path with an extra segment is simply not the webhook's path.
pub fn check_token(token: Option<&Token>, path: &PathMatch, query: &str) -> Result<(), ApiError> {
    let Some(token) = token else {
        return match path {
            PathMatch::Base => Ok(()),
            _ => Err(not_found()),
        };
    };
    let candidate = match path {
        PathMatch::WithSegment(segment) => Some(segment.clone()),
        PathMatch::Base => query_token(query),
        PathMatch::Other => return Err(not_found()),
    };
    match candidate {
        Some(candidate) if token.matches(&candidate) => Ok(()),
        // One answer for missing and wrong alike: no hint which part was wrong.
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong token",
        )),
    }
}

/// The answer for any path that is not the webhook's, token or not.
pub fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such path")
}

fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "token").then(|| percent_decode_str(value).decode_utf8_lossy().into_owned())
    })
}

/// The client's address: the socket's peer, or, when the peer is a trusted proxy, the
/// nearest `X-Forwarded-For` entry that is not itself a trusted proxy.
///
/// IPv4 clients of a dual-stack listener (`[::]:8787`) arrive as IPv4-mapped IPv6
/// addresses (`::ffff:192.0.2.7`); every address is read in its IPv4 form then, so that
/// `allow_from` and `trusted_proxies` networks such as `192.0.2.0/24` match them.
pub fn client_address(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    let nearest_untrusted = forwarded.iter().rev().find(|ip| !is_trusted(ip));
    Some(*nearest_untrusted.or(forwarded.first()).unwrap_or(&peer))
}

/// Refuses clients outside `allow_from` (an empty list allows everyone).
pub fn check_allowed(client: Option<IpAddr>, allow_from: &[IpNet]) -> Result<(), ApiError> {
    if allow_from.is_empty() {
        return Ok(());
    }
    match client {
        Some(ip) if allow_from.iter().any(|net| net.contains(&ip)) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this address may not post here",
        )),
    }
}

/// The path as it may be logged: the segments it shares with `base`, then `***` for
/// whatever follows. A token can sit anywhere in a path that is not quite the webhook's
/// (`/redbrick//<token>`, `/redbrick/<token>/x`, a proxy's `/hooks/redbrick/<token>`),
/// so nothing past the configured path is ever shown.
pub fn redact(path: &str, base: &str) -> String {
    let mut wanted = base.split('/').skip(1).filter(|s| !s.is_empty());
    let mut shown = String::new();
    let mut rest = path.split('/').skip(1).filter(|s| !s.is_empty()).peekable();
    while let Some(segment) = rest.peek() {
        match wanted.next() {
            Some(expected) if expected == *segment => {
                shown.push('/');
                shown.push_str(segment);
                rest.next();
            }
            _ => break,
        }
    }
    match (rest.peek().is_some(), shown.is_empty()) {
        (true, _) => format!("{shown}/***"),
        (false, true) => "/".to_owned(),
        (false, false) => shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::new("s3cret")
    }

    #[test]
    fn the_token_may_be_a_path_segment_or_a_query_parameter() {
        let base = "/redbrick";
        let check = |path: &str, query: &str| {
            check_token(Some(&token()), &match_path(path, base), query).map_err(|e| e.code)
        };

        assert_eq!(check("/redbrick/s3cret", ""), Ok(()));
        assert_eq!(check("/redbrick", "a=1&token=s3cret"), Ok(()));
        assert_eq!(check("/redbrick", ""), Err("unauthorized"));
        assert_eq!(check("/redbrick/wrong", ""), Err("unauthorized"));
        assert_eq!(check("/redbrick", "token=s3cre"), Err("unauthorized"));
        assert_eq!(check("/elsewhere/s3cret", ""), Err("not_found"));
    }

    #[test]
    fn without_a_token_only_the_exact_path_is_served() {
        let check =
            |path: &str| check_token(None, &match_path(path, "/redbrick"), "").map_err(|e| e.code);

        assert_eq!(check("/redbrick/"), Ok(()));
        assert_eq!(check("/redbrick/x"), Err("not_found"));
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxy: IpNet = "10.0.0.0/8".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.7".parse().unwrap());
        let from = |peer: &str| client_address(Some(peer.parse().unwrap()), &headers, &[proxy]);

        assert_eq!(from("10.0.0.1:5000"), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(
            from("198.51.100.1:5000"),
            Some("198.51.100.1".parse().unwrap())
        );
    }

    #[test]
    fn the_allow_list_refuses_other_addresses() {
        let allow: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];

        assert!(check_allowed(Some("192.0.2.7".parse().unwrap()), &allow).is_ok());
        assert_eq!(
            check_allowed(Some("192.0.3.7".parse().unwrap()), &allow)
                .unwrap_err()
                .code,
            "forbidden"
        );
        assert!(check_allowed(None, &[]).is_ok());
    }

    #[test]
    fn logged_paths_never_hold_the_token() {
        assert_eq!(redact("/redbrick/s3cret", "/redbrick"), "/redbrick/***");
        assert_eq!(redact("/redbrick", "/redbrick"), "/redbrick");
        assert_eq!(redact("/redbrick/", "/redbrick"), "/redbrick");
        assert_eq!(redact("/redbrick//s3cret", "/redbrick"), "/redbrick/***");
        assert_eq!(redact("/redbrick/s3cret/x", "/redbrick"), "/redbrick/***");
        assert_eq!(redact("/hooks/redbrick/s3cret", "/redbrick"), "/***");
        assert_eq!(redact("/redbrick%2Fs3cret", "/redbrick"), "/***");
        assert_eq!(redact("/redbrickx", "/redbrick"), "/***");
        assert_eq!(redact("/a/b/s3cret", "/a/b"), "/a/b/***");
        assert_eq!(redact("/s3cret", ""), "/***");
        assert_eq!(redact("/", ""), "/");
    }
}
