//! What the bill says: Cost Explorer's GetCostAndUsage for one month,
//! grouped by the `workstation:owner` and `workstation:name`
//! cost-allocation tags (terraform/cost.tf activates them). Cost Explorer
//! answers only in us-east-1, lags the usage by up to a day, and charges
//! per request: `status` never asks it, `cost` asks once a run.

use std::collections::BTreeMap;

use aws_sdk_costexplorer::types::{DateInterval, GroupDefinition, GroupDefinitionType};
use chrono::{DateTime, Duration, Utc};

use super::CostError;
use crate::provider::tags;
use crate::provider::usage::Month;

/// The metric summed: what each usage cost when it happened.
const METRIC: &str = "UnblendedCost";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bill {
    /// USD by (owner, box name), for resources tagged with an owner.
    pub boxes: BTreeMap<(String, String), f64>,
    /// The account's other spend in the month (nothing tagged with an
    /// owner).
    pub untagged_usd: f64,
    /// Whether any spend carried an owner tag, anyone's: none at all means
    /// the cost-allocation tags are not active (yet).
    pub tagged: bool,
}

pub struct CostExplorer {
    client: aws_sdk_costexplorer::Client,
}

impl CostExplorer {
    pub fn new(sdk: &aws_config::SdkConfig) -> CostExplorer {
        let config = aws_sdk_costexplorer::config::Builder::from(sdk).region(aws_config::Region::new("us-east-1")).build();
        CostExplorer { client: aws_sdk_costexplorer::Client::from_conf(config) }
    }

    /// `month`'s bill up to today (its end date is exclusive).
    pub async fn month(&self, month: Month, now: DateTime<Utc>) -> Result<Bill, CostError> {
        let start = month.start().date_naive();
        let end = month.next().start().min(now + Duration::days(1)).date_naive();
        if end <= start {
            return Ok(Bill::default());
        }
        let period = DateInterval::builder().start(start.to_string()).end(end.to_string()).build().expect("start and end are set");
        let group = |key: &str| GroupDefinition::builder().r#type(GroupDefinitionType::Tag).key(key).build();
        let mut bill = Bill::default();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .get_cost_and_usage()
                .time_period(period.clone())
                .granularity(aws_sdk_costexplorer::types::Granularity::Monthly)
                .metrics(METRIC)
                .group_by(group(tags::OWNER))
                .group_by(group(tags::NAME))
                .set_next_page_token(token.take())
                .send()
                .await
                .map_err(|e| CostError::from_sdk("ce:GetCostAndUsage", e))?;
            for g in out.results_by_time().iter().flat_map(|r| r.groups()) {
                let usd = g.metrics().and_then(|m| m.get(METRIC)).and_then(|v| v.amount()).and_then(|a| a.parse::<f64>().ok()).filter(|u| u.is_finite());
                let Some(usd) = usd else { continue };
                match tag_values(g.keys()) {
                    Some(key) => {
                        bill.tagged = true;
                        *bill.boxes.entry(key).or_default() += usd
                    }
                    None => bill.untagged_usd += usd,
                }
            }
            token = out.next_page_token().filter(|t| !t.is_empty()).map(String::from);
            if token.is_none() {
                return Ok(bill);
            }
        }
    }
}

/// (owner, name) from a group's keys, `workstation:owner$alice` and
/// `workstation:name$dev`; None without an owner. Tag values are whatever
/// someone wrote: only printable text is kept.
fn tag_values(keys: &[String]) -> Option<(String, String)> {
    let value = |tag: &str| keys.iter().find_map(|k| k.strip_prefix(tag)?.strip_prefix('$')).map(printable).unwrap_or_default();
    let owner = value(tags::OWNER);
    (!owner.is_empty()).then(|| (owner, value(tags::NAME)))
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_name_the_owner_and_box() {
        let keys = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        assert_eq!(tag_values(&keys("workstation:owner$alice", "workstation:name$dev")), Some(("alice".into(), "dev".into())));
        assert_eq!(tag_values(&keys("workstation:owner$", "workstation:name$dev")), None);
        assert_eq!(tag_values(&keys("workstation:owner$bo\u{1b}[2Jb", "workstation:name$")), Some(("bo[2Jb".into(), String::new())));
    }
}
