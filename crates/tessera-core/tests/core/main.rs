//! Integration tests of tessera-core: attacks on the token format, property tests and the
//! Wycheproof and RFC test vectors. One test binary, one module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod forged;
mod layering;
mod props;
mod rfc7515;
mod wycheproof;
