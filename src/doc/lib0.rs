//! The few lib0 encodings y-protocols messages use, bounds-checked.
//!
//! - `varUint`: little-endian base-128, 7 bits per byte, high bit set on every byte but the last
//!   (lib0 `writeVarUint`). Values above 2^53 − 1 (JavaScript's safe integers) are refused.
//! - `varUint8Array`: a `varUint` length, then that many bytes.
//! - `varString`: a `varUint8Array` of UTF-8.

use crate::error::{Error, Result};

/// Largest value a lib0 `varUint` may carry here (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Appends `value` as a lib0 `varUint`.
pub fn write_var_uint(out: &mut Vec<u8>, mut value: u64) {
    while value > 0x7f {
        out.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a lib0 `varUint8Array`.
pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_var_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A cursor over lib0-encoded bytes of the structure `what`.
#[derive(Debug)]
pub struct Lib0Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Lib0Reader<'a> {
    /// Starts reading `bytes` as a `what`.
    pub fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Lib0Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Reads a `varUint` (at most 8 bytes, value at most [`MAX_SAFE_INTEGER`]).
    pub fn var_uint(&mut self, field: &str) -> Result<u64> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(Error::malformed(self.what, format!("truncated in {field}")));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 49 {
                return Err(Error::malformed(self.what, format!("{field} is over 2^53")));
            }
        }
        if value > MAX_SAFE_INTEGER {
            return Err(Error::malformed(self.what, format!("{field} is over 2^53")));
        }
        Ok(value)
    }

    /// Reads a `varUint` that must fit in a `u32` (client ids).
    pub fn var_u32(&mut self, field: &str) -> Result<u32> {
        let value = self.var_uint(field)?;
        u32::try_from(value)
            .map_err(|_| Error::malformed(self.what, format!("{field} is over 2^32")))
    }

    /// Reads a `varUint8Array` of at most `limit` bytes.
    pub fn var_bytes(&mut self, field: &'static str, limit: usize) -> Result<&'a [u8]> {
        let len = self.var_uint(field)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > limit {
            return Err(Error::LimitExceeded {
                what: field,
                limit,
                got: len,
            });
        }
        if len > self.remaining() {
            return Err(Error::malformed(
                self.what,
                format!(
                    "truncated in {field}: need {len} bytes, {} left",
                    self.remaining()
                ),
            ));
        }
        let out = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    /// Reads a `varString` of at most `limit` bytes of UTF-8.
    pub fn var_string(&mut self, field: &'static str, limit: usize) -> Result<&'a str> {
        let bytes = self.var_bytes(field, limit)?;
        std::str::from_utf8(bytes)
            .map_err(|_| Error::malformed(self.what, format!("{field} is not UTF-8")))
    }

    /// Succeeds only if everything was read.
    pub fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes {
                what: self.what,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_uint_matches_lib0() {
        for (value, bytes) in [
            (0u64, vec![0u8]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (
                MAX_SAFE_INTEGER,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f],
            ),
        ] {
            let mut out = Vec::new();
            write_var_uint(&mut out, value);
            assert_eq!(out, bytes);
            let mut r = Lib0Reader::new("t", &bytes);
            assert_eq!(r.var_uint("v").unwrap(), value);
            r.finish().unwrap();
        }
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f];
        assert_eq!(
            Lib0Reader::new("t", &too_big)
                .var_uint("v")
                .unwrap_err()
                .code(),
            "MALFORMED"
        );
        let endless = [0x80; 20];
        assert_eq!(
            Lib0Reader::new("t", &endless)
                .var_uint("v")
                .unwrap_err()
                .code(),
            "MALFORMED"
        );
        let long = [0x05, 1, 2];
        assert_eq!(
            Lib0Reader::new("t", &long)
                .var_bytes("b", 4)
                .unwrap_err()
                .code(),
            "LIMIT_EXCEEDED"
        );
    }
}
