//! A preview's hostnames in a Route 53 private hosted zone (terraform's
//! optional `preview_zone`), so reviewers on the VPN resolve them without
//! the hosts agent. A box's private address stays the same across stops,
//! which is why records point there.

use std::net::IpAddr;

use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};

use super::PreviewError;

/// Short, so a preview torn down and made again is found quickly.
const TTL_SECONDS: i64 = 60;

pub struct Zone {
    client: aws_sdk_route53::Client,
    id: String,
}

impl Zone {
    pub fn new(client: aws_sdk_route53::Client, id: &str) -> Result<Zone, PreviewError> {
        // Hosted zone ids are upper-case letters and digits (Z0123...).
        let id = id.trim_start_matches("/hostedzone/");
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Err(PreviewError::Zone(format!("--zone-id {id:?} is not a Route 53 hosted zone id (like Z0123456789ABCDEFGHIJ)")));
        }
        Ok(Zone { client, id: id.to_owned() })
    }

    /// Points `names` at `address` (creates or replaces the records).
    pub async fn upsert(&self, names: &[String], address: IpAddr) -> Result<(), PreviewError> {
        self.change(ChangeAction::Upsert, names, address).await
    }

    /// Removes the records `upsert` made; records already gone are fine.
    pub async fn delete(&self, names: &[String], address: IpAddr) -> Result<(), PreviewError> {
        for name in names {
            match self.change(ChangeAction::Delete, std::slice::from_ref(name), address).await {
                Err(PreviewError::Zone(e)) if e.contains("not found") => tracing::debug!("record {name} already gone"),
                other => other?,
            }
        }
        Ok(())
    }

    async fn change(&self, action: ChangeAction, names: &[String], address: IpAddr) -> Result<(), PreviewError> {
        if names.is_empty() {
            return Ok(());
        }
        let kind = if address.is_ipv4() { RrType::A } else { RrType::Aaaa };
        let invalid = |e: aws_sdk_route53::error::BuildError| PreviewError::Zone(e.to_string());
        let mut batch = ChangeBatch::builder().comment("workstation preview");
        for name in names {
            let record = ResourceRecord::builder().value(address.to_string()).build().map_err(invalid)?;
            let set = ResourceRecordSet::builder().name(name).r#type(kind.clone()).ttl(TTL_SECONDS).resource_records(record).build().map_err(invalid)?;
            batch = batch.changes(Change::builder().action(action.clone()).resource_record_set(set).build().map_err(invalid)?);
        }
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.id)
            .change_batch(batch.build().map_err(invalid)?)
            .send()
            .await
            .map_err(|e| PreviewError::Zone(format!("Route 53 ChangeResourceRecordSets on zone {}: {}", self.id, aws_sdk_route53::error::DisplayErrorContext(&e))))?;
        Ok(())
    }
}
