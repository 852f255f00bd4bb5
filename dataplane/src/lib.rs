//! Sluice's packet processing, on plain byte buffers.
//!
//! Nothing here knows about DPDK: the daemon hands each received frame to a
//! [`worker::Worker`] through the [`packet::PacketBuf`] trait and acts on the
//! returned [`worker::Verdict`]. The same code runs in golden-packet tests and
//! benchmarks on `Vec`-backed buffers.

pub mod acl;
pub mod addr;
pub mod fixedmap;
pub mod inspect;
pub mod members;
pub mod neighbor;
pub mod packet;
pub mod route;
pub mod sched;
pub mod service;
pub mod session;
pub mod shared;
pub mod stats;
pub mod sync;
pub mod wire;
pub mod worker;

mod arp;
pub mod conntrack;
mod dsr;
mod egress;
pub mod exception;
mod fast;
mod flood;
mod flow;
pub mod frag;
mod icmp;
mod icmp6;
mod ipv4;
mod ipv6;
pub mod nat;
pub mod ndp;
pub mod persist;
mod proxy;
pub mod reload;
mod reset;
