//! `anpr demo`: the whole appliance on the synthesised demo clip with a local broker and
//! receiver, optionally through the signal-loss simulator.

use anyhow::Result;

use crate::DemoArgs;
use crate::exit::ExitStatus;

/// A demo in which not every plate of the clip arrived with the right text ran but failed.
#[allow(clippy::print_stdout)]
pub(crate) fn demo(args: &DemoArgs) -> Result<ExitStatus> {
    let link = match args.link.as_deref() {
        None => None,
        Some("patrol") => Some(anpr_netsim::Script::patrol()),
        Some(text) => Some(anpr_netsim::Script::parse(text)?),
    }
    .map(|script| anpr_demo::LinkOptions {
        script,
        time_scale: args.time_scale,
    });
    let out = super::runtime()?.block_on(anpr_demo::run(&args.config, !args.keep, link))?;
    super::print_summary(&out.summary);
    println!(
        "  delivered late     {} (captured while the link was down, or sent again)",
        out.delayed
    );
    for d in &out.report {
        println!("  central receiver   {d}");
    }
    println!(
        "plates delivered with the right text: {} of {} ({})",
        out.matched,
        out.manifest.vehicles.len(),
        out.received.join(", ")
    );
    Ok(ExitStatus::success_if(
        out.matched == out.manifest.vehicles.len(),
    ))
}
