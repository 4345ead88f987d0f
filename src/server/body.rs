//! The request body: its type and encoding checked, read within size and time bounds.
//!
//! The size limit applies while reading, whatever `Content-Length` claims (chunked bodies
//! have none), and to the decoded bytes of a gzip body, so a small compressed bomb is
//! refused before it fills memory. What the bytes mean is the `event` module's.

use std::io::Read;
use std::time::Duration;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use warp::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use warp::http::{HeaderMap, StatusCode};

use super::ApiError;

/// How the body is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// Checks `Content-Type` (JSON, or none) and `Content-Encoding` (none, identity or gzip).
pub fn check_headers(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    if let Some(value) = headers.get(CONTENT_TYPE) {
        let essence = value.to_str().unwrap_or("").split(';').next().unwrap_or("");
        if !essence.trim().eq_ignore_ascii_case("application/json") {
            let message = "send the webhook as `application/json`";
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message,
            ));
        }
    }
    let encoding = headers
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("" | "identity") => Ok(Encoding::Identity),
        Some("gzip" | "x-gzip") => Ok(Encoding::Gzip),
        Some(_) => {
            let message = "the only content encoding accepted is `gzip`";
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                message,
            ))
        }
    }
}

/// Reads the whole body within `timeout`, refusing it once it passes `limit` bytes
/// (decoded, for gzip).
pub async fn read<S, B>(
    body: S,
    encoding: Encoding,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let raw = match tokio::time::timeout(timeout, read_limited(body, limit)).await {
        Ok(raw) => raw?,
        Err(_) => {
            let message = format!(
                "the body did not arrive within {}",
                humantime::format_duration(timeout)
            );
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                message,
            ));
        }
    };
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => gunzip(&raw, limit),
    }
}

/// Refuses at once a body whose declared `Content-Length` is already over `limit`,
/// instead of waiting for bytes that will be refused anyway: a client announcing 10 GB
/// is answered now, not after `body_timeout`.
pub fn check_length(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

fn too_large(limit: usize) -> ApiError {
    let message = format!("the body is over the limit of {limit} bytes");
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
}

async fn read_limited<S, B>(mut body: S, limit: usize) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|err| {
            let message = format!("reading the body failed: {err}");
            ApiError::new(StatusCode::BAD_REQUEST, "body_unreadable", message)
        })?;
        if bytes.len() + chunk.remaining() > limit {
            return Err(too_large(limit));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            bytes.extend_from_slice(piece);
            let len = piece.len();
            chunk.advance(len);
        }
    }
    Ok(bytes)
}

/// Decodes at most `limit` bytes; one byte more means the body is too large.
fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut decoded = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(raw).take(limit as u64 + 1);
    decoder.read_to_end(&mut decoded).map_err(|err| {
        let message = format!("the gzip body cannot be decoded: {err}");
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_gzip", message)
    })?;
    if decoded.len() > limit {
        return Err(too_large(limit));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_is_decoded_within_the_limit() {
        assert_eq!(gunzip(&gzip(b"{\"a\":1}"), 100).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_limit() {
        let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);

        let err = gunzip(&bomb, 1024 * 1024).unwrap_err();

        assert!(
            bomb.len() < 200_000,
            "the bomb is small: {} bytes",
            bomb.len()
        );
        assert_eq!(
            (err.status, err.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        );
    }

    #[test]
    fn content_types_and_encodings_are_checked() {
        let check = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, value.parse().unwrap());
            }
            check_headers(&headers).map_err(|err| err.code)
        };

        assert_eq!(check(&[]), Ok(Encoding::Identity));
        assert_eq!(
            check(&[("content-type", "Application/JSON; charset=utf-8")]),
            Ok(Encoding::Identity)
        );
        assert_eq!(check(&[("content-encoding", "gzip")]), Ok(Encoding::Gzip));
        assert_eq!(
            check(&[("content-type", "text/plain")]),
            Err("unsupported_media_type")
        );
        assert_eq!(
            check(&[("content-encoding", "br")]),
            Err("unsupported_encoding")
        );
    }
}
