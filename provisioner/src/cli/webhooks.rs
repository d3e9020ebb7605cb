//! webhooks: third-party callbacks fanned out to previews and team boxes
//! (docs/preview.md, terraform/webhooks.tf).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use super::context::Global;
use super::output::{self, Output};
use crate::webhooks::{self, FunctionUrlRequest};

/// Third-party callbacks (Stripe, GitHub, ...) reach every running preview
/// and team box through one endpoint: register https://ENDPOINT/NAME with
/// the provider once, and each callback goes, byte for byte, to the path
/// the manifest's [webhooks] gives NAME on every such box. Without a
/// subcommand: the endpoint's URLs and the boxes a callback goes to now.
///
/// Examples:
///   workstation webhooks
///   workstation webhooks -o json
///   workstation webhooks deliver --event callback.json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    command: Option<WebhooksCommand>,
    /// The endpoint: terraform output webhooks_url.
    #[arg(long, value_name = "URL", env = "WORKSTATION_WEBHOOKS_URL")]
    endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    Deliver(DeliverArgs),
}

/// Run the endpoint's handler here, on Lambda function URL events (JSON
/// files, payload format 2.0): each callback goes to the boxes as the
/// endpoint would send it, one after the other, in one process (as a warm
/// Lambda does). For trying a manifest's [webhooks] out.
///
/// Examples:
///   workstation webhooks deliver --event callback.json
///   workstation webhooks deliver --event a.json --event b.json --timeout 2s -o json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
struct DeliverArgs {
    /// A function URL event (repeat for several).
    #[arg(long, value_name = "FILE", required = true)]
    event: Vec<PathBuf>,
    /// How long each box has to answer.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = super::duration::parse)]
    timeout: Duration,
}

pub async fn run(global: &Global, args: WebhooksArgs) -> Result<ExitCode> {
    let manifest = global.load_manifest()?;
    let ctx = global.context(Some(&manifest)).await?;
    match args.command {
        Some(WebhooksCommand::Deliver(d)) => {
            let mut results = Vec::new();
            let mut all_ok = true;
            for path in &d.event {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read --event {}", path.display()))?;
                let request: FunctionUrlRequest =
                    serde_json::from_str(&text).with_context(|| format!("--event {}: not a Lambda function URL event (payload format 2.0)", path.display()))?;
                let handled = webhooks::handle(ctx.provider(), &manifest.manifest, request, d.timeout).await;
                let status = handled.response.status_code;
                all_ok &= (200..300).contains(&status);
                if global.output == Output::Text {
                    println!("{}: {status} {}", path.display(), handled.response.body);
                    for d in &handled.deliveries {
                        let outcome = d.status.map(|s| s.to_string()).or(d.error.clone()).unwrap_or_default();
                        println!("  {:<24} {outcome} ({} ms)", d.box_name, d.ms);
                    }
                }
                results.push(serde_json::json!({"event": path, "name": handled.name, "status": status, "deliveries": handled.deliveries}));
            }
            if global.output == Output::Json {
                output::json(&results)?;
            }
            Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        None => {
            let hooks = &manifest.manifest.webhooks;
            let boxes = ctx.provider().list(None).await?;
            let endpoint = args.endpoint.as_deref().map(|e| e.trim_end_matches('/').to_owned());
            let callbacks: Vec<serde_json::Value> = hooks
                .paths
                .iter()
                .map(|(name, path)| {
                    let targets: Vec<String> = webhooks::targets(&boxes, hooks, name).iter().map(|t| format!("{} {}", t.box_name, t.url(""))).collect();
                    serde_json::json!({"name": name, "url": endpoint.as_ref().map(|e| format!("{e}/{name}")), "path": path, "targets": targets})
                })
                .collect();
            match global.output {
                Output::Json => output::json(&serde_json::json!({"endpoint": endpoint, "port": hooks.port(), "callbacks": callbacks}))?,
                Output::Text => {
                    if callbacks.is_empty() {
                        println!("the manifest has no [webhooks]");
                    }
                    let base = endpoint.as_deref().unwrap_or("<endpoint: --endpoint or terraform output webhooks_url>");
                    for c in &callbacks {
                        println!("{base}/{} -> {} on port {}", c["name"].as_str().unwrap_or_default(), c["path"].as_str().unwrap_or_default(), hooks.port());
                        let targets = c["targets"].as_array().cloned().unwrap_or_default();
                        if targets.is_empty() {
                            println!("  no running preview or team box");
                        }
                        for t in targets {
                            println!("  {}", t.as_str().unwrap_or_default());
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
