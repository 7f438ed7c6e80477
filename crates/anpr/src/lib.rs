//! The appliance: the device runtime, the demo and the command-line tools built on the
//! library crates. The `anpr` binary is a thin shell over this crate.
pub mod bench;
pub mod demo;
pub mod democlip;
pub mod detect;
pub mod device;
pub mod eval;
pub mod evidence;
