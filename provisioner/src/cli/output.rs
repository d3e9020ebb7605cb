//! Printing results: a table or text for people, JSON for scripts.

use comfy_table::presets::NOTHING;
use comfy_table::Table;
use serde::Serialize;

use crate::provider::BoxInfo;

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

pub fn spinner(output: Output) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if output != Output::Text || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(bar)
}
