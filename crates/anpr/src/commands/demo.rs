//! `anpr demo`: the whole appliance on the synthesised demo clip with a local broker and
//! receiver, optionally through the signal-loss simulator. It starts afresh unless told to
//! keep the previous queue, and refuses to throw away a queue holding undelivered rows unless
//! told to (`--discard-undelivered`).

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
    let (input, default_config) = if args.scene {
        (anpr_demo::Input::Scene, "config/scene.toml")
    } else {
        (anpr_demo::Input::Clip, "config/demo.toml")
    };
    let config = args.config.clone().unwrap_or_else(|| default_config.into());
    let start = if args.keep {
        anpr_demo::Start::Keep
    } else if args.discard_undelivered {
        anpr_demo::Start::DiscardUndelivered
    } else {
        anpr_demo::Start::Fresh
    };
    let out = super::runtime()?.block_on(anpr_demo::run(&config, input, start, link))?;
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
        out.truth.plates.len(),
        out.received
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.scene {
        let show = |m: &std::collections::BTreeMap<String, u64>| {
            m.iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "violations by rule: {} (the scene must raise: {})",
            show(&out.violations),
            show(&out.truth.violations)
        );
    }
    Ok(ExitStatus::success_if(
        out.matched == out.truth.plates.len()
            && (!args.scene || out.violations == out.truth.violations),
    ))
}
