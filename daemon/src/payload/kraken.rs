//! Kraken: API-Sign is "HMAC-SHA512 of (URI path + SHA256(nonce + POST data))" (Kraken REST
//! API, Authentication). The daemon signs the inner message: the path, then the 32 raw bytes
//! of the SHA-256. The parameters and the nonce are hashed, so only the path can be judged;
//! `deny_params` and `timestamp_window_ms` cannot apply to a Kraken key (see
//! [`validate`](super::validate)).

use super::{Format, ParseError, ParseErrorKind, ParsedRequest};

const DIGEST_LEN: usize = 32;

pub(crate) fn parse(payload: &[u8]) -> Result<ParsedRequest, ParseError> {
    let Some(path_len) = payload.len().checked_sub(DIGEST_LEN) else {
        return Err(ParseError::new(
            payload.len(),
            ParseErrorKind::UnexpectedEnd("the path and the 32-byte SHA-256"),
        ));
    };
    let (path, end) = super::path::path(&payload[..path_len], 0)?;
    if end != path_len {
        return Err(ParseError::new(
            end,
            ParseErrorKind::BadPath("a character outside A-Z a-z 0-9 - _ . ~ /"),
        ));
    }
    let mut request = ParsedRequest::new(Format::Kraken);
    request.path = Some(path.to_owned());
    Ok(request)
}
