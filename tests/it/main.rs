//! Integration tests of the appliance, all in one test binary (one link instead of one per
//! file): real models, a real mosquitto and the real receiver, and the `anpr` binary where the
//! command line is what is tested. Set up with `deploy/setup.sh` first.
//!
//! `cargo test -p anpr --test it` runs them all; `cargo test -p anpr --test it golden` runs one
//! module.
#![allow(clippy::unwrap_used)]

mod util;

mod bad_input;
mod cluster;
mod custody;
mod end_to_end;
mod faults;
mod fleet;
mod gnss;
mod golden;
mod int8;
mod kz_reading;
mod manual;
mod plate_lists;
mod receiver_limits;
mod receivers;
mod recognition;
mod reports;
mod road;
mod rtsp;
mod service;
mod shutdown;
mod signal_loss;
mod soak;
mod status_page;
mod tls;
mod trust;
mod uplink;
mod vehicle_types;
