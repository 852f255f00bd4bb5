//! Helpers shared by the golden-packet and property tests.
#![allow(dead_code)]

pub mod frame;
pub mod frame6;
pub mod lab;
pub mod lab6;
