//! Framing: a 4-byte big-endian body length, then the body.
//!
//! The length is checked against the limit *before* any body byte is read or buffered, so a
//! peer cannot make the other side allocate more than the limit. Readers that own their I/O
//! read [`HEADER_LEN`] bytes, call [`body_len`], then read exactly that many bytes; readers
//! with a buffer call [`split_frame`], which tells "need more bytes" apart from "invalid".

use core::fmt;

/// Length of the frame header (the big-endian `u32` body length).
pub const HEADER_LEN: usize = 4;

/// A frame that must not be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announces a body longer than the limit.
    TooLarge {
        /// Body length the header announced.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The header announces an empty body; no message encodes to zero bytes.
    Empty,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            FrameError::Empty => f.write_str("empty frame"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads the body length from a frame header and checks it against `max`.
pub fn body_len(header: [u8; HEADER_LEN], max: u32) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge {
            len: u64::from(len),
            max,
        });
    }
    // u32 always fits in usize on the 32- and 64-bit targets keyward supports.
    Ok(len as usize)
}

/// Builds the header for a body of `len` bytes, or refuses a body above `max`.
pub fn header_for(len: usize, max: u32) -> Result<[u8; HEADER_LEN], FrameError> {
    match u32::try_from(len) {
        Ok(0) => Err(FrameError::Empty),
        Ok(n) if n <= max => Ok(n.to_be_bytes()),
        _ => Err(FrameError::TooLarge {
            len: len as u64,
            max,
        }),
    }
}

/// A frame's body and the bytes after it, both borrowed from the input.
pub type Split<'a> = (&'a [u8], &'a [u8]);

/// Splits one frame off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not hold a whole frame yet, `Ok(Some((body, rest)))`
/// when it does, and an error as soon as the header is invalid (without waiting for a body).
pub fn split_frame(buf: &[u8], max: u32) -> Result<Option<Split<'_>>, FrameError> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = body_len(*header, max)?;
    Ok(rest.split_at_checked(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_checked_before_the_body_arrives() {
        let header = (DEFAULT + 1).to_be_bytes();
        assert_eq!(
            split_frame(&header, DEFAULT),
            Err(FrameError::TooLarge {
                len: u64::from(DEFAULT) + 1,
                max: DEFAULT
            })
        );
        assert_eq!(
            split_frame(&[0xff; 4], DEFAULT).map(|_| ()),
            Err(FrameError::TooLarge {
                len: u64::from(u32::MAX),
                max: DEFAULT
            })
        );
    }

    const DEFAULT: u32 = crate::DEFAULT_MAX_FRAME;

    #[test]
    fn incomplete_input_asks_for_more() {
        assert_eq!(split_frame(&[], DEFAULT), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0], DEFAULT), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0, 3, 1, 2], DEFAULT), Ok(None));
    }

    #[test]
    fn whole_frame_splits_and_leaves_the_rest() {
        let buf = [0, 0, 0, 2, 7, 8, 9];
        assert_eq!(
            split_frame(&buf, DEFAULT),
            Ok(Some((&[7u8, 8][..], &[9u8][..])))
        );
    }

    #[test]
    fn empty_frames_are_refused() {
        assert_eq!(split_frame(&[0, 0, 0, 0], DEFAULT), Err(FrameError::Empty));
        assert_eq!(header_for(0, DEFAULT), Err(FrameError::Empty));
    }

    #[test]
    fn a_body_exactly_at_the_limit_is_accepted_and_one_more_byte_is_not() {
        let body = vec![1u8; DEFAULT as usize];
        let mut out = header_for(body.len(), DEFAULT).unwrap().to_vec();
        out.extend_from_slice(&body);
        let (got, rest) = split_frame(&out, DEFAULT).unwrap().unwrap();
        assert_eq!(got.len(), DEFAULT as usize);
        assert!(rest.is_empty());
        let body = vec![1u8; DEFAULT as usize + 1];
        assert!(header_for(body.len(), DEFAULT).is_err());
    }
}
