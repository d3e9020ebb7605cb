//! A preview's hostnames in a Route 53 private hosted zone (terraform's
//! optional `preview_zone`), so reviewers on the VPN resolve them without
//! the hosts agent. Records name a box's private address, which an EC2
//! instance keeps across stops (its public one changes).

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
        if names.is_empty() {
            return Ok(());
        }
        let kind = if address.is_ipv4() { RrType::A } else { RrType::Aaaa };
        let mut sets = Vec::new();
        for name in names {
            let record = ResourceRecord::builder().value(address.to_string()).build().map_err(invalid)?;
            sets.push(ResourceRecordSet::builder().name(name).r#type(kind.clone()).ttl(TTL_SECONDS).resource_records(record).build().map_err(invalid)?);
        }
        self.submit(ChangeAction::Upsert, sets).await
    }

    /// Removes preview `number`'s records: every A or AAAA record with a
    /// `pr-N` label (naming `address` only, when given), as the zone holds
    /// them: a DELETE must repeat a record's values exactly.
    pub async fn delete_preview(&self, number: u32, address: Option<IpAddr>) -> Result<Vec<String>, PreviewError> {
        let label = format!("pr-{number}");
        let mut doomed = Vec::new();
        let names_address = |set: &ResourceRecordSet| address.is_none_or(|a| set.resource_records().iter().any(|r| r.value() == a.to_string()));
        let mut start: Option<(String, RrType, Option<String>)> = None;
        loop {
            let mut req = self.client.list_resource_record_sets().hosted_zone_id(&self.id);
            if let Some((name, kind, identifier)) = start.take() {
                req = req.start_record_name(name).start_record_type(kind).set_start_record_identifier(identifier);
            }
            let page = req.send().await.map_err(|e| self.failed("ListResourceRecordSets", e))?;
            for set in page.resource_record_sets() {
                let ours = matches!(set.r#type(), RrType::A | RrType::Aaaa)
                    && set.name().trim_end_matches('.').split('.').skip(1).any(|l| l.eq_ignore_ascii_case(&label))
                    && names_address(set);
                if ours {
                    doomed.push(set.clone());
                }
            }
            match (page.is_truncated(), page.next_record_name(), page.next_record_type()) {
                (true, Some(name), Some(kind)) => start = Some((name.to_owned(), kind.clone(), page.next_record_identifier().map(str::to_owned))),
                _ => break,
            }
        }
        let names = doomed.iter().map(|s| s.name().trim_end_matches('.').to_owned()).collect();
        if doomed.is_empty() {
            return Ok(names);
        }
        self.submit(ChangeAction::Delete, doomed).await?;
        Ok(names)
    }

    /// One ChangeResourceRecordSets call: `action` on every set, all or none.
    async fn submit(&self, action: ChangeAction, sets: Vec<ResourceRecordSet>) -> Result<(), PreviewError> {
        let mut batch = ChangeBatch::builder().comment("workstation preview");
        for set in sets {
            batch = batch.changes(Change::builder().action(action.clone()).resource_record_set(set).build().map_err(invalid)?);
        }
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.id)
            .change_batch(batch.build().map_err(invalid)?)
            .send()
            .await
            .map_err(|e| self.failed("ChangeResourceRecordSets", e))?;
        Ok(())
    }

    fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(&self, operation: &str, e: aws_sdk_route53::error::SdkError<E, R>) -> PreviewError {
        PreviewError::Zone(format!("Route 53 {operation} on zone {}: {}", self.id, aws_sdk_route53::error::DisplayErrorContext(&e)))
    }
}

fn invalid(e: aws_sdk_route53::error::BuildError) -> PreviewError {
    PreviewError::Zone(e.to_string())
}
