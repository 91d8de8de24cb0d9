//! Request body decoding: media type and encoding checks, a size- and time-bounded body read,
//! gzip decoding with a cap on the decoded size, and JSON parsing.
//!
//! Order matters for cheap rejection: headers are checked (415, and 413 from `Content-Length`)
//! before a single body byte is read; the raw body is read with a byte cap and a per-read timeout
//! (408); gzip is decoded as a stream that stops one byte past the decoded cap, so a gzip bomb
//! costs at most `max_request_bytes` of memory and a few milliseconds of CPU.

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::config::Limits;
use crate::error::IngestError;

/// How the body is encoded (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

/// Accepts `application/json` and `text/plain` (what `sendBeacon` sends for a string or a typed
/// Blob); parameters such as `charset` are ignored. Anything else, or none, is 415.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), IngestError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("text/plain")
    {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType(format!(
            "Content-Type must be application/json or text/plain, got {:?}",
            value
        )))
    }
}

/// `identity` (or absent) and `gzip`/`x-gzip`; anything else is 415.
pub fn content_encoding(headers: &HeaderMap) -> Result<Encoding, IngestError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let value = value.to_str().unwrap_or("").trim();
    if value.is_empty() || value.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Ok(Encoding::Gzip)
    } else {
        Err(IngestError::UnsupportedMediaType(format!(
            "Content-Encoding must be gzip or identity, got {:?}",
            value
        )))
    }
}

/// Rejects ambiguous message framing, the shapes request smuggling is built from: a transfer
/// coding other than plain `chunked` (hyper accepts `gzip, chunked` but does not undo the
/// `gzip`, so the body would be misread), or both `Content-Length` and `Transfer-Encoding`.
/// hyper (1.x) handles the rest itself: it refuses duplicate or malformed lengths and other
/// codings with a bare 400, and for a request with both headers it lets chunked win, drops the
/// `Content-Length` before we see it and closes the connection after the response, so nothing
/// after that body is ever read as a request. The check for both headers stays as a guard in
/// case that ever changes.
pub fn check_framing(headers: &HeaderMap) -> Result<(), IngestError> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let Some(first) = codings.next() else {
        return Ok(());
    };
    if headers.contains_key(header::CONTENT_LENGTH) {
        return Err(IngestError::BadFraming(
            "Content-Length and Transfer-Encoding together are refused".into(),
        ));
    }
    let plain = first
        .to_str()
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
    if !plain || codings.next().is_some() {
        return Err(IngestError::BadFraming(
            "Transfer-Encoding must be chunked (use Content-Encoding: gzip to compress)".into(),
        ));
    }
    Ok(())
}

/// Rejects a declared `Content-Length` over the cap before reading the body.
pub fn check_content_length(headers: &HeaderMap, limit: usize) -> Result<(), IngestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

fn too_large(limit: usize) -> IngestError {
    IngestError::PayloadTooLarge(format!("request body exceeds {limit} bytes"))
}

/// Reads the raw body: at most `limit` bytes, and no more than `per_read` between two frames.
///
/// A body that arrives in one data frame (the usual case) is that frame's bytes, not a copy
/// (a 100-message batch is ~45 KB of memcpy per request otherwise); a second frame starts the
/// buffer they are gathered in.
pub async fn read_body(body: Body, limit: usize, per_read: Duration) -> Result<Bytes, IngestError> {
    let mut body = body;
    let declared = usize::try_from(axum::body::HttpBody::size_hint(&body).lower()).unwrap_or(0);
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(per_read, body.frame()).await {
            Err(_) => return Err(IngestError::BodyTimeout(per_read.as_secs().max(1))),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(IngestError::BodyRead(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            let read = first.as_ref().map_or(buf.len(), Bytes::len);
            if read + data.len() > limit {
                return Err(too_large(limit));
            }
            if buf.is_empty() && first.is_none() {
                first = Some(data);
                continue;
            }
            let f = first.take();
            let needed = read + data.len();
            if needed > buf.capacity() {
                buf.reserve_exact(
                    grown_capacity(buf.capacity(), needed, declared.min(limit)) - buf.len(),
                );
            }
            if let Some(f) = f {
                buf.extend_from_slice(&f);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(match first {
        Some(f) => f,
        None => Bytes::from(buf),
    })
}

/// The capacity to grow a body buffer of `capacity` to when it must hold `needed` bytes: at least
/// double (amortised copying), starting at 64 KiB, but not past the declared Content-Length, so a
/// 360 KB body does not sit in a 512 KiB buffer. Growth stays tied to what has arrived: a
/// client that declares a large body and stalls costs at most about twice what it sent.
fn grown_capacity(capacity: usize, needed: usize, declared: usize) -> usize {
    const FIRST: usize = 64 * 1024;
    let doubled = capacity.saturating_mul(2).max(FIRST);
    let capped = if declared >= needed {
        doubled.min(declared)
    } else {
        doubled
    };
    capped.max(needed)
}

/// Decodes the raw body; the decoded output never grows past `limit + 1` bytes.
pub fn decode_payload(raw: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes, IngestError> {
    match encoding {
        Encoding::Identity => {
            if raw.len() > limit {
                return Err(too_large(limit));
            }
            Ok(raw)
        }
        Encoding::Gzip => {
            // Start small: typical batches compress ~10x; `take` bounds the growth.
            let mut out = Vec::with_capacity((raw.len() * 4).min(limit + 1));
            let mut decoder = MultiGzDecoder::new(&raw[..]).take(limit as u64 + 1);
            match decoder.read_to_end(&mut out) {
                Ok(_) if out.len() > limit => Err(IngestError::PayloadTooLarge(format!(
                    "decoded request body exceeds {limit} bytes"
                ))),
                Ok(_) => Ok(Bytes::from(out)),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Err(IngestError::InvalidGzip("truncated stream".into()))
                }
                Err(e) => Err(IngestError::InvalidGzip(e.to_string())),
            }
        }
    }
}

/// Parses the decoded body as one JSON value. serde_json's recursion limit (128) turns deeply
/// nested input into an error instead of a stack overflow.
pub fn parse_json(bytes: &[u8]) -> Result<Value, IngestError> {
    crate::plain_json::from_slice(bytes).map_err(|e| IngestError::InvalidJson(e.to_string()))
}

/// All of the above but the JSON parse, in order. Returns the decoded body and the raw
/// (on-the-wire) body size. `body_read` is set once the whole body has been received (see
/// `router`: a connection whose body was left unread is closed).
pub async fn decode_body(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
    body_read: &mut bool,
) -> Result<(Bytes, usize), IngestError> {
    check_content_type(headers)?;
    let encoding = content_encoding(headers)?;
    check_content_length(headers, limits.max_request_bytes)?;
    let raw = read_body(body, limits.max_request_bytes, limits.body_read_timeout).await?;
    *body_read = true;
    let raw_len = raw.len();
    Ok((
        decode_payload(raw, encoding, limits.max_request_bytes)?,
        raw_len,
    ))
}

/// `decode_body` then `parse_json`: the JSON value and the raw body size.
pub async fn decode_request(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
    body_read: &mut bool,
) -> Result<(Value, usize), IngestError> {
    let (decoded, raw_len) = decode_body(headers, body, limits, body_read).await?;
    Ok((parse_json(&decoded)?, raw_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;
    use std::time::Instant;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// A gzip member that inflates to `mib` MiB of zeros, built without compressing that much:
    /// a full-flushed deflate block of 1 MiB zeros is position independent, so it is repeated.
    /// The trailer (CRC, length) is wrong on purpose: a correct decoder must stop at the cap first.
    fn gzip_bomb(mib: usize) -> Vec<u8> {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&vec![0u8; 1 << 20]).unwrap();
        enc.flush().unwrap(); // sync flush; the dictionary only holds zeros either way
        let block = enc.get_ref().clone();
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        for _ in 0..mib {
            out.extend_from_slice(&block);
        }
        out.extend_from_slice(&[3, 0]); // final empty fixed block
        out.extend_from_slice(&[0; 8]);
        out
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        for ok in [
            "application/json",
            "text/plain;charset=UTF-8",
            "Application/JSON; x=y",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ok).unwrap());
            assert!(check_content_type(&h).is_ok(), "{ok}");
        }
        for bad in [
            "application/x-www-form-urlencoded",
            "text/html",
            "multipart/form-data",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(bad).unwrap());
            let e = check_content_type(&h).unwrap_err();
            assert_eq!(e.status(), 415, "{bad}");
        }
        assert_eq!(
            check_content_type(&HeaderMap::new()).unwrap_err().status(),
            415
        );
    }

    #[test]
    fn encodings() {
        let mut h = HeaderMap::new();
        assert_eq!(content_encoding(&h).unwrap(), Encoding::Identity);
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("GZIP"));
        assert_eq!(content_encoding(&h).unwrap(), Encoding::Gzip);
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(content_encoding(&h).unwrap_err().status(), 415);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let mut h = HeaderMap::new();
        assert!(check_framing(&h).is_ok());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        assert!(check_framing(&h).is_ok());
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert_eq!(check_framing(&h).unwrap_err().code(), "bad_framing");
        h.remove(header::CONTENT_LENGTH);
        assert!(check_framing(&h).is_ok());
        for bad in ["gzip, chunked", "chunked, chunked", "identity", "xchunked"] {
            h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static(bad));
            assert_eq!(check_framing(&h).unwrap_err().status(), 400, "{bad}");
        }
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.append(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert!(check_framing(&h).is_err());
    }

    #[test]
    fn content_length_checked_before_reading() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("101"));
        assert_eq!(check_content_length(&h, 100).unwrap_err().status(), 413);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("100"));
        assert!(check_content_length(&h, 100).is_ok());
    }

    #[test]
    fn gzip_round_trip() {
        let json = br#"{"batch":[]}"#;
        let out = decode_payload(Bytes::from(gzip(json)), Encoding::Gzip, 100).unwrap();
        assert_eq!(&out[..], json);
        // Concatenated members are one stream (RFC 1952).
        let mut two = gzip(b"{\"a\":");
        two.extend(gzip(b"1}"));
        let out = decode_payload(Bytes::from(two), Encoding::Gzip, 100).unwrap();
        assert_eq!(&out[..], b"{\"a\":1}");
    }

    #[test]
    fn gzip_bomb_is_rejected_quickly_with_bounded_memory() {
        // ~1 MiB on the wire that would inflate to 1 GiB.
        let bomb = gzip_bomb(1024);
        assert!(bomb.len() < 2 << 20, "bomb is {} bytes", bomb.len());
        let start = Instant::now();
        let err = decode_payload(Bytes::from(bomb), Encoding::Gzip, 500 * 1024).unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(err.to_string().contains("decoded"), "{err}");
        // Only ~500 KiB were inflated: well under a second even in a debug build.
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn decoded_output_never_exceeds_the_cap() {
        // Drive the same bounded reader by hand and watch the buffer's capacity.
        let bomb = gzip_bomb(64);
        let limit = 500 * 1024;
        let mut out = Vec::new();
        let _ = MultiGzDecoder::new(&bomb[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out);
        assert_eq!(out.len(), limit + 1);
        assert!(out.capacity() <= 2 * (limit + 1), "{}", out.capacity());
    }

    #[test]
    fn truncated_and_garbage_gzip_are_400() {
        let full = gzip(br#"{"batch":[{"type":"track","event":"x","userId":"u"}]}"#);
        let cut = Bytes::copy_from_slice(&full[..full.len() / 2]);
        let e = decode_payload(cut, Encoding::Gzip, 1000).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.code(), "invalid_gzip");
        let e = decode_payload(Bytes::from_static(b"not gzip"), Encoding::Gzip, 1000).unwrap_err();
        assert_eq!(e.code(), "invalid_gzip");
    }

    #[test]
    fn json_errors_carry_a_message() {
        let e = parse_json(b"{\"a\":").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("EOF"), "{e}");
        let deep = "[".repeat(10_000);
        assert_eq!(
            parse_json(deep.as_bytes()).unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(parse_json(b"\xff\xfe").unwrap_err().code(), "invalid_json");
    }

    #[tokio::test]
    async fn body_read_is_capped_and_timed() {
        let body = Body::from(vec![b'x'; 101]);
        let e = read_body(body, 100, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.status(), 413);

        // A body that sends one chunk and then stalls forever.
        let stalled = Frames {
            data: [Bytes::from_static(b"{")].into(),
            then_stall: true,
        };
        let e = read_body(Body::new(stalled), 100, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e.status(), 408);
    }

    /// One frame is the body as it came; more are gathered in order; the cap counts them all.
    #[tokio::test]
    async fn body_frames_are_gathered_in_order() {
        let frames = |parts: &[&'static [u8]]| {
            Body::new(Frames {
                data: parts.iter().map(|p| Bytes::from_static(p)).collect(),
                then_stall: false,
            })
        };
        let read = |parts: &[&'static [u8]], limit| {
            read_body(frames(parts), limit, Duration::from_secs(1))
        };
        assert_eq!(read(&[], 10).await.unwrap(), Bytes::new());
        assert_eq!(
            read(&[b"abc"], 10).await.unwrap(),
            Bytes::from_static(b"abc")
        );
        assert_eq!(
            read(&[b"", b"abc"], 10).await.unwrap(),
            Bytes::from_static(b"abc")
        );
        assert_eq!(
            read(&[b"ab", b"c", b"", b"de"], 10).await.unwrap(),
            Bytes::from_static(b"abcde")
        );
        assert_eq!(
            read(&[b"ab", b"cd"], 4).await.unwrap(),
            Bytes::from_static(b"abcd")
        );
        assert_eq!(read(&[b"ab", b"cde"], 4).await.unwrap_err().status(), 413);
        assert_eq!(read(&[b"abcde"], 4).await.unwrap_err().status(), 413);
        assert_eq!(
            read(&[b"a", b"b", b"cde"], 4).await.unwrap_err().status(),
            413
        );
    }

    /// A gathered body's buffer doubles from 64 KiB, stops at the declared length, and always
    /// holds what arrived (a wrong or missing Content-Length only costs regrowth).
    #[test]
    fn body_buffers_grow_by_doubling_up_to_the_declared_length() {
        const K: usize = 1024;
        assert_eq!(grown_capacity(0, 10, 0), 64 * K);
        assert_eq!(grown_capacity(0, 10, 30), 30);
        assert_eq!(grown_capacity(0, 70 * K, 360 * K), 70 * K);
        assert_eq!(grown_capacity(70 * K, 100 * K, 360 * K), 140 * K);
        assert_eq!(grown_capacity(128 * K, 130 * K, 360 * K), 256 * K);
        assert_eq!(grown_capacity(256 * K, 260 * K, 360 * K), 360 * K);
        // More arrived than declared: whatever is needed, still doubling.
        assert_eq!(grown_capacity(64 * K, 65 * K, 64 * K), 128 * K);
        assert_eq!(grown_capacity(64 * K, 300 * K, 0), 300 * K);
    }

    /// A body of these data frames, in order; then its end, or (`then_stall`) nothing ever again.
    struct Frames {
        data: std::collections::VecDeque<Bytes>,
        then_stall: bool,
    }

    impl axum::body::HttpBody for Frames {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
            match self.data.pop_front() {
                Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
                None if self.then_stall => std::task::Poll::Pending,
                None => std::task::Poll::Ready(None),
            }
        }
    }
}
