//! Networking below the host calls: the WASIX address layouts ([`addr`]) and the policy
//! that says what network guests may reach ([`policy`]). Plain data; the socket calls
//! themselves are in `wasi::sock`, on host sockets.

pub(crate) mod addr;
pub mod policy;
