//! On-demand prices from the AWS Price List API (GetProducts), cached on
//! the laptop for a day: an instance type's hourly Linux price, and gp3
//! and snapshot storage per GiB-month, in one region.
//!
//! Each price list item is a JSON document (AWS's "Price List Query API"
//! shape): `product.attributes` and `terms.OnDemand.<offer>.priceDimensions
//! .<rate>.pricePerUnit.USD`. The API answers only in us-east-1 (and two
//! other regions), whatever region the boxes are in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_pricing::types::{Filter, FilterType};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::CostError;

/// How long fetched prices are used: AWS changes them rarely, and `status`
/// shows a cost line without asking every time.
const FRESH_FOR: Duration = Duration::days(1);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub region: String,
    pub fetched_at: Option<DateTime<Utc>>,
    /// USD per hour, Linux, shared tenancy, by instance type.
    pub instance_hourly: BTreeMap<String, f64>,
    /// Types the Price List has no such price for (asked again after a day).
    #[serde(default)]
    pub unpriced: std::collections::BTreeSet<String>,
    /// USD per GiB-month of a gp3 volume (workstation's root and data).
    pub gp3_gib_month: Option<f64>,
    /// USD per GiB-month of an EBS snapshot (images' snapshots).
    pub snapshot_gib_month: Option<f64>,
}

/// After a failed fetch for `status`, how long `status` asks no more (a
/// laptop without `pricing:` would otherwise wait on every `status`).
const QUIET_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct PriceList {
    client: aws_sdk_pricing::Client,
    cache_dir: PathBuf,
    /// `status`'s: one attempt, a short timeout, failures remembered.
    quick: bool,
}

impl PriceList {
    pub fn new(sdk: &aws_config::SdkConfig, cache_dir: PathBuf) -> PriceList {
        let config = aws_sdk_pricing::config::Builder::from(sdk).region(aws_config::Region::new("us-east-1")).build();
        PriceList { client: aws_sdk_pricing::Client::from_conf(config), cache_dir, quick: false }
    }

    /// For `status`'s line, which must not hold `status` up: the cache, else
    /// one attempt of at most 3 s; after a failure, nothing for an hour.
    pub fn quick(sdk: &aws_config::SdkConfig, cache_dir: PathBuf) -> PriceList {
        let config = aws_sdk_pricing::config::Builder::from(sdk)
            .region(aws_config::Region::new("us-east-1"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_timeout(std::time::Duration::from_secs(3)).build())
            .build();
        PriceList { client: aws_sdk_pricing::Client::from_conf(config), cache_dir, quick: true }
    }

    fn failure_mark(&self, region: &str) -> PathBuf {
        self.cache_dir.join(format!("prices-{region}.failed"))
    }

    fn cache_file(&self, region: &str) -> PathBuf {
        self.cache_dir.join(format!("prices-{region}.json"))
    }

    /// `region`'s prices for `types`, from the day-old cache when it has
    /// them all, else asked again (and cached).
    pub async fn prices(&self, region: &str, types: &[String], now: DateTime<Utc>) -> Result<Prices, CostError> {
        // It names the cache file (and comes from settings or AWS_REGION).
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(CostError::Api { action: "pricing:GetProducts", message: format!("region {region:?} is not an AWS region name (e.g. eu-west-1)") });
        }
        let cached: Option<Prices> = std::fs::read(self.cache_file(region)).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let fresh = cached.filter(|p| p.region == region && p.fetched_at.is_some_and(|t| now - t < FRESH_FOR && t <= now));
        if let Some(p) = &fresh {
            if types.iter().all(|t| p.instance_hourly.contains_key(t) || p.unpriced.contains(t)) && p.gp3_gib_month.is_some() {
                return Ok(p.clone());
            }
        }
        let mark = self.failure_mark(region);
        let failed_lately = std::fs::metadata(&mark).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age < QUIET_AFTER_FAILURE));
        if self.quick && failed_lately {
            return Err(CostError::Api {
                action: "pricing:GetProducts",
                message: format!("failed within the hour ({}); `workstation cost` asks again", mark.display()),
            });
        }
        let prices = self.fetch(region, types, fresh).await;
        if self.quick && prices.is_err() {
            let _ = std::fs::create_dir_all(&self.cache_dir).and_then(|()| std::fs::write(&mark, b""));
        }
        let mut prices = prices?;
        // A fresh cache keeps its age: prices older than a day are asked again.
        prices.fetched_at.get_or_insert(now);
        self.save(&prices);
        Ok(prices)
    }

    async fn fetch(&self, region: &str, types: &[String], fresh: Option<Prices>) -> Result<Prices, CostError> {
        let mut prices = fresh.unwrap_or_else(|| Prices { region: region.into(), ..Default::default() });
        let missing: Vec<&String> = types.iter().filter(|t| !prices.instance_hourly.contains_key(*t) && !prices.unpriced.contains(*t)).collect();
        for t in missing {
            let compute =
                [("instanceType", t.as_str()), ("operatingSystem", "Linux"), ("tenancy", "Shared"), ("preInstalledSw", "NA"), ("capacitystatus", "Used")];
            if let Some(usd) = self.one_price(region, &compute, |_| true).await? {
                prices.instance_hourly.insert(t.clone(), usd);
            } else {
                prices.unpriced.insert(t.clone());
            }
        }
        if prices.gp3_gib_month.is_none() {
            prices.gp3_gib_month = self.one_price(region, &[("productFamily", "Storage"), ("volumeApiName", "gp3")], |_| true).await?;
        }
        if prices.snapshot_gib_month.is_none() {
            // Standard snapshots, not the archive tier or fast restore.
            let standard = |usage: &str| usage.ends_with("EBS:SnapshotUsage");
            prices.snapshot_gib_month = self.one_price(region, &[("productFamily", "Storage Snapshot")], standard).await?;
        }
        Ok(prices)
    }

    /// The on-demand USD price of the first product in `region` matching
    /// `terms` whose usagetype passes `usage`.
    async fn one_price(&self, region: &str, terms: &[(&str, &str)], usage: impl Fn(&str) -> bool) -> Result<Option<f64>, CostError> {
        let filter =
            |field: &str, value: &str| Filter::builder().r#type(FilterType::TermMatch).field(field).value(value).build().expect("field and value are set");
        let filters: Vec<Filter> = std::iter::once(filter("regionCode", region)).chain(terms.iter().map(|(f, v)| filter(f, v))).collect();
        let mut pages = self.client.get_products().service_code("AmazonEC2").set_filters(Some(filters)).max_results(100).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| CostError::from_sdk("pricing:GetProducts", e))?;
            if let Some(usd) = page.price_list().iter().find_map(|item| on_demand_usd(item, &usage)) {
                return Ok(Some(usd));
            }
        }
        Ok(None)
    }

    /// Replaces the cache whole (a reader never sees half a file). A cache
    /// that cannot be written is only slower.
    fn save(&self, prices: &Prices) {
        let file = self.cache_file(&prices.region);
        let json = serde_json::to_vec_pretty(prices).expect("prices serialize");
        if let Err(e) = workstation_hosts_protocol::atomic::write(&file, &json, 0o600) {
            tracing::warn!("could not cache prices in {}: {e}", file.display());
        }
    }
}

/// The one on-demand USD price of a price list item (whose usagetype
/// passes `usage`), if it has exactly one non-zero rate.
pub fn on_demand_usd(item: &str, usage: impl Fn(&str) -> bool) -> Option<f64> {
    let doc: serde_json::Value = serde_json::from_str(item).ok()?;
    usage(doc.pointer("/product/attributes/usagetype").and_then(|u| u.as_str()).unwrap_or_default()).then_some(())?;
    let rates: Vec<f64> = doc
        .pointer("/terms/OnDemand")?
        .as_object()?
        .values()
        .filter_map(|offer| offer.get("priceDimensions")?.as_object())
        .flat_map(|dims| dims.values())
        .filter_map(|d| d.pointer("/pricePerUnit/USD")?.as_str()?.parse::<f64>().ok())
        .filter(|usd| usd.is_finite() && *usd > 0.0)
        .collect();
    match rates[..] {
        [usd] => Some(usd),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item as the Price List Query API documents it.
    fn item(usage: &str, usd: &str) -> String {
        serde_json::json!({
            "product": {"productFamily": "Compute Instance", "attributes": {"instanceType": "m7i.large", "regionCode": "eu-west-1", "usagetype": usage}, "sku": "ABC"},
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {"ABC.JRTCKXETXF": {"priceDimensions": {"ABC.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": usd}}}, "sku": "ABC"}},
                "Reserved": {"ABC.XYZ": {"priceDimensions": {"ABC.XYZ.1": {"unit": "Hrs", "pricePerUnit": {"USD": "0.0500000000"}}}}}
            },
            "version": "20261201000000",
            "publicationDate": "2026-12-01T00:00:00Z"
        })
        .to_string()
    }

    #[test]
    fn reads_the_on_demand_rate_not_the_reserved_one() {
        assert_eq!(on_demand_usd(&item("EU-BoxUsage:m7i.large", "0.1126000000"), |_| true), Some(0.1126));
        assert_eq!(on_demand_usd(&item("EU-EBS:SnapshotArchiveStorage", "0.0125"), |u| u.ends_with("EBS:SnapshotUsage")), None);
        assert_eq!(on_demand_usd(&item("x", "0.0000000000"), |_| true), None);
        assert_eq!(on_demand_usd("not json", |_| true), None);
    }
}
