//! One month's cost: per box and per owner, billed and estimated, the hours
//! boxes spent stopped by the idle check and reap and what that saved, and
//! the data volumes kept without a box.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::billed::Bill;
use super::prices::Prices;
use crate::provider::data::GP3_USD_PER_GIB_MONTH;
use crate::provider::usage::{Month, Open, StoppedBy};
use crate::provider::{BoxInfo, BoxState, DataVolume};

const HOUR: f64 = 3600.0;

#[derive(Debug, Clone, Serialize)]
pub struct BoxCost {
    pub owner: String,
    pub name: String,
    /// None: a box the bill has that no longer exists.
    pub id: Option<String>,
    pub state: Option<&'static str>,
    pub instance_type: Option<String>,
    pub running_hours: f64,
    pub stopped_hours: f64,
    /// Of the stopped hours, those after a stop by the box's idle check or
    /// `reap`.
    pub idle_stopped_hours: f64,
    /// Instance hours and volumes at list prices, up to now (None: no
    /// price for its instance type).
    pub estimate_usd: Option<f64>,
    /// The idle-stopped hours at the instance's price.
    pub saved_usd: Option<f64>,
    /// Cost Explorer's figure (None: not asked, or not allowed).
    pub billed_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OwnerCost {
    pub owner: String,
    pub boxes: usize,
    pub billed_usd: Option<f64>,
    pub estimate_usd: f64,
    pub idle_stopped_hours: f64,
    pub saved_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeptVolume {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub size_gib: u32,
    pub monthly_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub month: Month,
    pub as_of: DateTime<Utc>,
    pub boxes: Vec<BoxCost>,
    pub owners: Vec<OwnerCost>,
    pub kept_volumes: Vec<KeptVolume>,
    /// The account's spend not tagged with an owner (Cost Explorer only).
    pub untagged_usd: Option<f64>,
    /// Whether the bill had any spend tagged with an owner, anyone's
    /// (false: the cost-allocation tags are not active yet).
    pub tags_active: Option<bool>,
    /// Why there are no billed figures, in one line with its fix.
    pub billed_unavailable: Option<String>,
    pub prices: Prices,
}

/// What a report is made of.
pub struct Inputs<'a> {
    pub month: Month,
    pub now: DateTime<Utc>,
    pub boxes: &'a [BoxInfo],
    pub volumes: &'a [DataVolume],
    /// Root volume size (the manifest's box.disk_gib), if known.
    pub root_gib: Option<u32>,
    pub prices: &'a Prices,
    pub bill: Result<Option<Bill>, String>,
}

/// A box's hours and dollars in `month` up to `now`.
pub fn box_cost(info: &BoxInfo, month: Month, now: DateTime<Utc>, prices: &Prices, volume_gib: u32) -> BoxCost {
    let open = match (info.state, info.stopped_at) {
        (BoxState::Running | BoxState::Pending, _) => Open::Running { since: info.usage.since.max(info.launched_at) },
        (_, Some(at)) => Open::Stopped { launched_at: info.launched_at, at, by: StoppedBy::of(info.stopped_by.as_deref(), at) },
        _ => Open::Unknown,
    };
    let h = info.usage.month_until(month, open, now);
    let hourly = info.instance_type.as_ref().and_then(|t| prices.instance_hourly.get(t)).copied();
    let (running, idle) = (h.running_s as f64 / HOUR, (h.stopped_idle_s + h.stopped_reap_s) as f64 / HOUR);
    let stopped = idle + h.stopped_other_s as f64 / HOUR;
    // Volumes cost while the box exists, running or not.
    let month_hours = (month.next().start() - month.start()).num_seconds() as f64 / HOUR;
    let volumes = gp3(prices) * volume_gib as f64 * (running + stopped) / month_hours;
    BoxCost {
        owner: info.owner.clone(),
        name: info.name.clone(),
        id: Some(info.id.clone()),
        state: Some(info.state.as_str()),
        instance_type: info.instance_type.clone(),
        running_hours: running,
        stopped_hours: stopped,
        idle_stopped_hours: idle,
        estimate_usd: hourly.map(|p| p * running + volumes),
        saved_usd: hourly.map(|p| p * idle),
        billed_usd: None,
    }
}

pub fn build(inputs: Inputs<'_>) -> CostReport {
    let Inputs { month, now, boxes, volumes, root_gib, prices, bill } = inputs;
    let data_gib = |id: &str| volumes.iter().filter(|v| v.attached_to.as_deref() == Some(id)).map(|v| v.size_gib).sum::<u32>();
    let mut rows: Vec<BoxCost> = boxes.iter().map(|b| box_cost(b, month, now, prices, root_gib.unwrap_or(0) + data_gib(&b.id))).collect();
    let (bill, billed_unavailable) = match bill {
        Ok(b) => (b, None),
        Err(why) => (None, Some(why)),
    };
    if let Some(bill) = &bill {
        for ((owner, name), usd) in &bill.boxes {
            match rows.iter_mut().find(|r| &r.owner == owner && &r.name == name) {
                Some(row) => row.billed_usd = Some(row.billed_usd.unwrap_or(0.0) + usd),
                None => rows.push(gone(owner, name, *usd)),
            }
        }
        for row in rows.iter_mut() {
            row.billed_usd.get_or_insert(0.0);
        }
    }
    rows.sort_by(|a, b| (&a.owner, &a.name).cmp(&(&b.owner, &b.name)));
    let gp3 = gp3(prices);
    let kept_volumes = volumes
        .iter()
        .filter(|v| v.is_kept())
        .map(|v| KeptVolume { id: v.id.clone(), owner: v.owner.clone(), name: v.name.clone(), size_gib: v.size_gib, monthly_usd: v.size_gib as f64 * gp3 })
        .collect();
    CostReport {
        month,
        as_of: now,
        owners: owners(&rows, bill.is_some()),
        boxes: rows,
        kept_volumes,
        untagged_usd: bill.as_ref().map(|b| b.untagged_usd),
        tags_active: bill.as_ref().map(|b| b.tagged),
        billed_unavailable,
        prices: prices.clone(),
    }
}

/// gp3's price per GiB-month: the Price List's, else us-east-1's list price.
fn gp3(prices: &Prices) -> f64 {
    prices.gp3_gib_month.unwrap_or(GP3_USD_PER_GIB_MONTH)
}

/// A box the bill names that is gone (destroyed this month).
fn gone(owner: &str, name: &str, usd: f64) -> BoxCost {
    BoxCost {
        owner: owner.into(),
        name: name.into(),
        id: None,
        state: None,
        instance_type: None,
        running_hours: 0.0,
        stopped_hours: 0.0,
        idle_stopped_hours: 0.0,
        estimate_usd: None,
        saved_usd: None,
        billed_usd: Some(usd),
    }
}

fn owners(rows: &[BoxCost], billed: bool) -> Vec<OwnerCost> {
    let mut by: BTreeMap<&str, OwnerCost> = BTreeMap::new();
    for r in rows {
        let o = by.entry(&r.owner).or_insert_with(|| OwnerCost {
            owner: r.owner.clone(),
            boxes: 0,
            billed_usd: billed.then_some(0.0),
            estimate_usd: 0.0,
            idle_stopped_hours: 0.0,
            saved_usd: 0.0,
        });
        o.boxes += usize::from(r.id.is_some());
        o.billed_usd = o.billed_usd.map(|b| b + r.billed_usd.unwrap_or(0.0));
        o.estimate_usd += r.estimate_usd.unwrap_or(0.0);
        o.idle_stopped_hours += r.idle_stopped_hours;
        o.saved_usd += r.saved_usd.unwrap_or(0.0);
    }
    by.into_values().collect()
}

/// `status`'s line: the box's estimate this month so far.
pub fn status_line(c: &BoxCost, month: Month) -> String {
    let dollars = c.estimate_usd.map(|u| format!("~${u:.2}")).unwrap_or_else(|| "unknown (no price for its type)".into());
    let saved = c.saved_usd.filter(|s| *s >= 0.005).map(|s| format!(", ${s:.2} saved by {:.1} h stopped idle", c.idle_stopped_hours)).unwrap_or_default();
    format!("cost: {dollars} in {month} so far ({:.1} h running{saved}); `workstation cost` has the bill", c.running_hours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::usage::Usage;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_stopped_box_costs_its_run_and_its_volumes_and_saves_its_idle_hours() {
        let prices = Prices { instance_hourly: [("m7i.large".to_string(), 0.1)].into(), gp3_gib_month: Some(0.08), ..Default::default() };
        let mut b = BoxInfo::example("i-1", BoxState::Stopped);
        b.instance_type = Some("m7i.large".into());
        b.launched_at = Some(t("2026-12-01T08:00:00Z"));
        // Ran 08:00-12:00 on the 1st, stopped by its idle check since.
        b.stopped_at = Some(t("2026-12-01T12:00:00Z"));
        b.stopped_by = Some("box idle-check at 2026-12-01T12:00:00Z: idle".into());
        b.usage = Usage::default();
        let month = Month::parse("2026-12").unwrap();
        // Before any start wrote it, the ledger is empty: EC2's LaunchTime
        // and stop time give the run.
        let c = box_cost(&b, month, t("2026-12-02T12:00:00Z"), &prices, 0);
        assert_eq!((c.running_hours, c.idle_stopped_hours), (4.0, 24.0));
        // Once written, the run is not counted twice.
        b.usage = Usage::default().after_start(b.launched_at, b.stopped_at.unwrap(), StoppedBy::Other, b.stopped_at.unwrap());
        let c = box_cost(&b, month, t("2026-12-02T12:00:00Z"), &prices, 31);
        assert_eq!((c.running_hours, c.stopped_hours, c.idle_stopped_hours), (4.0, 24.0, 24.0));
        // 4 h at $0.10, and 31 GiB at $0.08 for 28 of December's 744 hours.
        assert!((c.estimate_usd.unwrap() - (0.4 + 31.0 * 0.08 * 28.0 / 744.0)).abs() < 1e-9, "{c:?}");
        assert!((c.saved_usd.unwrap() - 2.4).abs() < 1e-9);
    }
}
