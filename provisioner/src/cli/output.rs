//! Printing results: a table or text for people, JSON for scripts.

use comfy_table::presets::NOTHING;
use comfy_table::Table;
use serde::Serialize;

use crate::laptop::hosts::{Pointed, Status};
use crate::provider::{BoxInfo, DataVolume};
use crate::stack::seed::SeedReport;
use crate::stack::services::ProgramStatus;
use crate::stack::up::UpReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn boxes_table(boxes: &[BoxInfo], with_owner: bool) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    let mut header = vec!["NAME", "STATE", "ADDRESS", "ID", "TYPE", "LAUNCHED"];
    if with_owner {
        header.insert(0, "OWNER");
    }
    t.set_header(header);
    for b in boxes {
        let mut row = vec![
            b.name.clone(),
            b.state.as_str().to_string(),
            b.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
            b.id.clone(),
            b.instance_type.clone().unwrap_or_else(|| "-".into()),
            b.launched_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "-".into()),
        ];
        if with_owner {
            row.insert(0, b.owner.clone());
        }
        t.add_row(row);
    }
    t.to_string()
}

pub fn volumes_table(volumes: &[DataVolume], with_owner: bool) -> String {
    let mut header = vec!["BOX", "VOLUME", "SIZE", "ATTACHED TO", "CREATED", "PER MONTH"];
    if with_owner {
        header.insert(0, "OWNER");
    }
    let mut t = table(header);
    for v in volumes {
        let mut row = vec![
            v.name.clone(),
            v.id.clone(),
            format!("{} GiB", v.size_gib),
            v.attached_to.clone().unwrap_or_else(|| "- (kept)".into()),
            v.created_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "-".into()),
            format!("${:.2}", v.monthly_usd()),
        ];
        if with_owner {
            row.insert(0, v.owner.clone());
        }
        t.add_row(row);
    }
    t.to_string()
}

fn table(header: Vec<&str>) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(header);
    t
}

pub fn programs_table(programs: &[ProgramStatus]) -> String {
    let mut t = table(vec!["PROGRAM", "KIND", "STATE", "PID", "UPTIME", "EXITS", "HEALTH"]);
    for p in programs {
        t.add_row(vec![
            p.name.clone(),
            p.kind.into(),
            p.state.clone(),
            p.pid.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
            p.uptime.clone().unwrap_or_else(|| "-".into()),
            p.unexpected_exits.to_string(),
            match &p.intercepted {
                Some(h) => {
                    let ports: Vec<String> = h.ports.iter().map(u16::to_string).collect();
                    format!("on {}'s laptop since {} (ports {})", h.by, h.since.format("%Y-%m-%d %H:%M UTC"), ports.join(", "))
                }
                None if p.routes.is_empty() => p.health.as_str(),
                None => {
                    let routes: Vec<String> = p.routes.iter().map(|r| format!("{} to {}", r.matches.describe(), r.by)).collect();
                    format!("{}; personal routes: {}", p.health.as_str(), routes.join(", "))
                }
            },
        ]);
    }
    t.to_string()
}

pub fn seeds_table(seeds: &[SeedReport]) -> String {
    let mut t = table(vec!["STORE", "SEED", "SIZE", "TIME", "SNAPSHOT"]);
    for s in seeds {
        let took = if s.seconds > 0.0 { format!("{:.1}s", s.seconds) } else { "-".into() };
        let size = if s.bytes > 0 { format!("{:.1} MB", s.bytes as f64 / 1e6) } else { "-".into() };
        t.add_row(vec![s.store.clone(), s.outcome.as_str().into(), size, took, s.snapshot.clone().unwrap_or_else(|| "-".into())]);
    }
    t.to_string()
}

/// The summary after `up`, `create` and `start`.
pub fn print_up(up: &UpReport) {
    println!("supervisord {} (configuration {}, root {})", up.supervisord, up.config, up.root);
    if !up.seeds.is_empty() {
        println!("{}", seeds_table(&up.seeds));
        for s in up.seeds.iter().filter_map(|s| s.error.as_ref()) {
            eprintln!("error: {s}");
        }
    }
    if !up.programs.is_empty() {
        println!("{}", programs_table(&up.programs));
    }
    if !up.healthy {
        eprintln!("not everything is healthy: `workstation services` and `workstation logs PROGRAM` tell more; `workstation up` retries");
    }
}

/// Where the laptop's hostnames point (`workstation hosts`, `share`).
pub fn hosts_table(status: &Status) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header(["HOSTNAME", "ADDRESS", "BOX", "TARGET"]);
    for n in &status.names {
        let address = n.address.map_or_else(|| "(resolving)".into(), |a| a.to_string());
        table.add_row([n.name.clone(), address, n.label.clone().unwrap_or_else(|| "-".into()), n.target.to_string()]);
    }
    format!("{table}\n(in {})", status.hosts_file.display())
}

/// One line after pointing hostnames (create, start, share).
pub fn print_pointed(pointed: &Pointed) {
    match pointed {
        Pointed::Pointed { names, address, label, changed, flushed } => {
            let caches: Vec<String> = flushed.iter().map(|f| format!("{} {}", f.cache, f.outcome)).collect();
            let caches = if caches.is_empty() { String::new() } else { format!("; flushed {}", caches.join(", ")) };
            println!("hostnames {} -> {label} at {address}{}{caches}", names.join(", "), if *changed { "" } else { " (unchanged)" });
        }
        Pointed::NoHostnames => {}
        Pointed::Skipped { reason } => eprintln!("note: hostnames not pointed: {reason}"),
    }
}

/// What a wake on connect did, on stderr (stdout belongs to the command
/// that woke the box): where the hostnames point, and what is not healthy
/// (the command runs anyway: it may be the one to find out why).
pub fn report_wake(started: &crate::boxes::Started) {
    let name = &started.info.name;
    if let Some(Pointed::Pointed { names, address, .. }) = &started.hostnames {
        eprintln!("woke box {name}; hostnames {} -> {address}", names.join(", "));
    } else {
        eprintln!("woke box {name}");
    }
    if let Some(up) = &started.up {
        let down: Vec<String> =
            up.programs.iter().filter(|p| !p.is_up()).map(|p| format!("{} ({}, {})", p.name, p.state.to_lowercase(), p.health.as_str())).collect();
        let seeds: Vec<&str> = up.seeds.iter().filter_map(|s| s.error.as_deref()).collect();
        if !down.is_empty() || !seeds.is_empty() {
            eprintln!(
                "warning: the stack is not healthy after the wake: {}; running the command anyway (`workstation services {name}` and `workstation logs PROGRAM` tell more)",
                down.into_iter().chain(seeds.into_iter().map(String::from)).collect::<Vec<_>>().join("; ")
            );
        }
    }
    if let Some(why) = &started.failed {
        eprintln!("warning: the stack did not come up after the wake ({why}); running the command anyway; `workstation up {name}` retries");
    }
    if !started.starting.is_empty() {
        eprintln!(
            "warning: without the box's workstation.toml here, only supervisord was waited for, and {} still starting; run from the checkout (or `workstation up {name}`) to wait for the health checks",
            started.starting.join(", ")
        );
    }
}

/// Runs `work` with a [`spinner`] (for text on a terminal), cleared after
/// it whatever the outcome.
pub async fn with_spinner<T>(output: Output, work: impl AsyncFnOnce(Option<&indicatif::ProgressBar>) -> T) -> T {
    let progress = spinner(output);
    let out = work(progress.as_ref()).await;
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    out
}

pub fn spinner(output: Output) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if output != Output::Text || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    // The step and how long it has taken so far (progress::step resets it).
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(bar)
}

/// A deploy's progress lines (installs, restarts) on stderr: stdout is the
/// report (`preview up`, `env up`).
pub struct StderrLines;

impl crate::sync::Report for StderrLines {
    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
}
