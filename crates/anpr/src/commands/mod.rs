//! One module per subcommand: each turns its arguments into calls to the library crates,
//! prints what they return, and says how the command ended (`ExitStatus`); an error is
//! classified in `exit.rs`.

mod bench;
mod camera_sim;
mod central;
mod custody;
mod demo;
mod detect;
mod eval;
mod export;
mod fleet;
mod make_demo;
mod pki;
mod run;
mod send_list;
mod verify;

pub(crate) use bench::bench;
pub(crate) use camera_sim::camera_sim;
pub(crate) use central::central;
pub(crate) use custody::custody;
pub(crate) use demo::demo;
pub(crate) use detect::detect;
pub(crate) use eval::eval;
pub(crate) use export::export;
pub(crate) use fleet::{FleetArgs, fleet};
pub(crate) use make_demo::make_demo;
pub(crate) use pki::pki;
pub(crate) use run::run;
pub(crate) use send_list::send_list;
pub(crate) use verify::verify;

use anyhow::Result;

/// The tokio runtime of the commands that talk to a broker: two worker threads, I/O and timers.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Prints what a device run did.
#[allow(clippy::print_stdout)]
fn print_summary(s: &anpr_pipeline::Summary) {
    println!("summary:");
    println!(
        "  frames processed   {} ({} skipped by idle_every / track_every, {} dropped)",
        s.frames, s.frames_skipped, s.frames_dropped
    );
    println!(
        "  time               {:.1} s, {:.1} frames recognised per second; {:.1} s of video, {:.2}x real time",
        s.elapsed.as_secs_f64(),
        s.fps(),
        s.stream_s,
        s.stream_s / s.elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "  plate reads        {} (per frame; {} confirmed from one view as their vehicle's known plate)",
        s.plate_reads, s.plates_confirmed
    );
    println!("  vehicles detected  {} (per frame)", s.vehicles);
    println!(
        "  events recorded    {} ({} passages, {} violations)",
        s.events,
        s.events.saturating_sub(s.violations),
        s.violations
    );
    println!(
        "  events delivered   {} (acknowledged by the central receiver)",
        s.delivered
    );
    println!("  still queued       {}", s.pending);
    for e in &s.camera_errors {
        println!("  camera fault       {e}");
    }
}
