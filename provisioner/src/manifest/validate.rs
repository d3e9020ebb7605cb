//! What types cannot check: every problem of a manifest, in file order,
//! naming the field and the fix.

use std::collections::{BTreeMap, BTreeSet};

use std::str::FromStr;
use std::time::Duration;

use super::store::QUEUE_NAME_MAX;
use super::{IdlePolicy, Manifest, Problem, ScheduleAction, SeedSource, Service, Store, StoreKind};

/// gp3 volumes range from 1 GiB to 16 TiB; below 8 GiB no NixOS image boots.
const DISK_GIB: std::ops::RangeInclusive<u32> = 8..=16384;

impl Manifest {
    /// Everything wrong with the manifest, in file order.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut problem = |field: String, message: String| out.push(Problem { field, message });

        let m = &self.machine;
        if m.instance_type.trim().is_empty() {
            problem("box.instance_type".into(), "is empty; set an EC2 instance type such as \"m7i.xlarge\"".into());
        }
        if !DISK_GIB.contains(&m.disk_gib) {
            problem("box.disk_gib".into(), format!("{} is out of range; use {} to {} (GiB)", m.disk_gib, DISK_GIB.start(), DISK_GIB.end()));
        }
        if !DISK_GIB.contains(&m.data_gib) {
            problem("box.data_gib".into(), format!("{} is out of range; use {} to {} (GiB)", m.data_gib, DISK_GIB.start(), DISK_GIB.end()));
        }
        if let Some(p) = &m.instance_profile {
            // IAM's instance profile names: letters, digits and +=,.@_-.
            let plain = p.replace(super::secret::OWNER, "");
            if p.is_empty() || !plain.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)) {
                problem("box.instance_profile".into(), format!("{p:?} is not an instance profile name; use terraform's instance_profile or instance_profile_per_owner output, such as \"workstation-box-{{owner}}\""));
            }
        }
        let set = [m.image_id.is_some(), m.image_name.is_some(), m.image_tag.is_some()].iter().filter(|s| **s).count();
        match (&m.image_id, set) {
            (_, 0) => problem(
                "box.image_id".into(),
                "missing; set box.image_id = \"ami-...\", box.image_name = \"workstation-...\" or box.image_tag = \"workstation\" (what `workstation image publish` tags)".into(),
            ),
            (_, 2..) => problem(
                "box.image_name".into(),
                "set only one of box.image_id, box.image_name and box.image_tag".into(),
            ),
            (Some(id), _) if !id.starts_with("ami-") => problem(
                "box.image_id".into(),
                format!("{id:?} is not an AMI id; it looks like \"ami-0123456789abcdef0\""),
            ),
            _ => {}
        }
        for (i, owner) in m.image_owners.iter().enumerate() {
            let account = owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit());
            if !(account || owner == "amazon") {
                problem(format!("box.image_owners[{i}]"), format!("{owner:?} is not an image owner; use a 12-digit AWS account id or \"amazon\""));
            }
        }
        if m.max_boxes_per_owner == Some(0) {
            problem("box.max_boxes_per_owner".into(), "is 0, which forbids every box; set at least 1, or remove it for no limit".into());
        }
        if let Some(url) = &m.deployed_manifest {
            if let Err(e) = crate::manifest::S3Url::parse(url) {
                problem("box.deployed_manifest".into(), format!("{e}; use terraform's manifest_url output"));
            }
        }
        if let Some(subnet) = &m.subnet {
            if !subnet.starts_with("subnet-") {
                problem("box.subnet".into(), format!("{subnet:?} is not a subnet id; it looks like \"subnet-0123abcd\""));
            }
            if !m.subnets.is_empty() {
                problem("box.subnets".into(), "set either subnet or subnets (one per zone, tried in order), not both".into());
            }
        }
        for (i, subnet) in m.subnets.iter().enumerate() {
            if !subnet.starts_with("subnet-") {
                problem(format!("box.subnets[{i}]"), format!("{subnet:?} is not a subnet id; it looks like \"subnet-0123abcd\""));
            } else if m.subnets[..i].contains(subnet) {
                problem(format!("box.subnets[{i}]"), format!("{subnet:?} is listed twice"));
            }
        }
        for (i, t) in m.fallback_instance_types.iter().enumerate() {
            if m.instance_types().take(i + 1).any(|earlier| earlier == t) {
                problem(format!("box.fallback_instance_types[{i}]"), format!("{t:?} is already tried before it; remove it"));
            }
        }
        for (i, sg) in m.security_groups.iter().enumerate() {
            if !sg.starts_with("sg-") {
                problem(format!("box.security_groups[{i}]"), format!("{sg:?} is not a security group id; it looks like \"sg-0123abcd\""));
            }
        }

        for (i, h) in self.hostnames.iter().enumerate() {
            if let Err(why) = check_hostname(h) {
                problem(format!("hostnames[{i}]"), why);
            }
        }
        let dup: BTreeSet<_> = self.hostnames.iter().filter(|h| self.hostnames.iter().filter(|o| o == h).count() > 1).collect();
        for h in dup {
            problem("hostnames".into(), format!("{h:?} is listed more than once"));
        }

        // Ports must be unique across services and stores: they share the box.
        let mut ports: BTreeMap<u16, String> = BTreeMap::new();
        let mut claim = |port: u16, field: String, problem: &mut dyn FnMut(String, String)| {
            if port == 0 {
                problem(field, "port 0 is not a port; use 1-65535".into());
            } else if let Some(prev) = ports.insert(port, field.clone()) {
                problem(field, format!("port {port} is already used by {prev}"));
            }
        };

        for (name, svc) in &self.services {
            let at = format!("services.{name}");
            if !is_program_name(name) {
                problem(at.clone(), "service names use a-z, 0-9, '-' and '_' (they become supervisord program names)".into());
            } else if name == super::service::FRONT_PROGRAM {
                problem(at.clone(), format!("{name:?} is the box's HTTP proxy in front of services (`front`); rename the service"));
            }
            if svc.command.trim().is_empty() {
                problem(format!("{at}.command"), "is empty; set the command that runs the service".into());
            }
            for dep in &svc.depends_on {
                if !self.services.contains_key(dep) {
                    problem(format!("{at}.depends_on"), format!("{dep:?} is not a service in this manifest"));
                } else if dep == name {
                    problem(format!("{at}.depends_on"), "a service cannot depend on itself".into());
                }
            }
            for (field, keys) in [("environment", svc.environment.keys().collect::<Vec<_>>()), ("secrets", svc.secrets.keys().collect())] {
                for key in keys {
                    if !is_variable_name(key) {
                        problem(format!("{at}.{field}"), format!("{key:?} is not a valid variable name; use A-Z, 0-9 and '_'"));
                    }
                }
            }
            for key in svc.secrets.keys().filter(|k| svc.environment.contains_key(*k)) {
                problem(format!("{at}.secrets.{key}"), "is also in environment; a variable comes from one of them, so remove it from environment".into());
            }
            if let Some(user) = &svc.user {
                if !is_user_name(user) {
                    problem(format!("{at}.user"), format!("{user:?} is not a user name; use a-z, 0-9, '_' and '-', starting with a letter or '_'"));
                }
            }
            for (i, p) in svc.ports.iter().enumerate() {
                claim(*p, format!("{at}.ports[{i}]"), &mut problem);
            }
            if let Some(front) = &svc.front {
                claim(front.port, format!("{at}.front.port"), &mut problem);
                match (front.to, svc.ports.len()) {
                    (Some(to), _) if !svc.ports.contains(&to) => problem(
                        format!("{at}.front.to"),
                        format!("{to} is not one of {name}'s ports; the proxy sends requests to a port the service listens on"),
                    ),
                    (None, n) if n != 1 => problem(
                        format!("{at}.front.to"),
                        format!("missing; {name} has {n} ports, so say which one the proxy sends requests to (front = {{ port = ..., to = PORT }})"),
                    ),
                    _ => {}
                }
            }
            if let Some(h) = &svc.health {
                let kinds = [h.http.is_some(), h.tcp.is_some(), h.command.is_some()].iter().filter(|k| **k).count();
                if kinds != 1 {
                    problem(format!("{at}.health"), "set exactly one of http = \"/path\" (with port), tcp = PORT or command = \"...\"".into());
                } else if h.http.is_some() && h.port.is_none() {
                    problem(format!("{at}.health.port"), "missing; an http health check needs the port to call".into());
                } else if let Some(path) = &h.http {
                    if !path.starts_with('/') {
                        problem(format!("{at}.health.http"), format!("{path:?} must be a path starting with '/'"));
                    }
                }
            }
        }
        if let Some(cycle) = dependency_cycle(&self.services) {
            problem("services".into(), format!("depends_on forms a cycle: {}", cycle.join(" -> ")));
        }

        for (name, store) in &self.stores {
            let at = format!("stores.{name}");
            if !is_program_name(name) {
                problem(at.clone(), "store names use a-z, 0-9, '-' and '_'".into());
            }
            if self.services.contains_key(name) {
                problem(at.clone(), format!("services.{name} has the same name; stores and services share supervisord's program names, rename one"));
            }
            claim(store.port(), format!("{at}.port"), &mut problem);
            if let Some(seed) = &store.seed {
                match SeedSource::from_str(seed) {
                    Err(why) => problem(format!("{at}.seed"), why),
                    Ok(_) => {
                        if let Err(why) = store.seed_format() {
                            problem(format!("{at}.format"), why);
                        }
                    }
                }
            } else if store.format.is_some() {
                problem(format!("{at}.format"), "set only with a seed; remove it or add seed = \"...\"".into());
            }
            match (&store.database, store.kind) {
                (Some(_), StoreKind::Redis | StoreKind::Opensearch | StoreKind::Sqs) => {
                    problem(format!("{at}.database"), format!("{} has no named databases; remove the field", store.kind.as_str()))
                }
                (Some(db), _) if !is_identifier(db) => {
                    problem(format!("{at}.database"), format!("{db:?} is not a database name; use a-z, 0-9 and '_', starting with a letter (at most 50)"))
                }
                _ => {}
            }
            if let Some(var) = &store.url_env {
                if !is_variable_name(var) {
                    problem(format!("{at}.url_env"), format!("{var:?} is not a valid variable name; use A-Z, 0-9 and '_'"));
                }
            }
            check_queues(&at, store, &mut problem);
        }
        let sqs: Vec<&String> = self.stores.iter().filter(|(_, s)| s.kind == StoreKind::Sqs).map(|(n, _)| n).collect();
        if sqs.len() > 1 {
            problem(
                format!("stores.{}", sqs[1]),
                format!("is a second sqs store (stores.{} is one); services reach one SQS endpoint, so list every queue in one store's queues", sqs[0]),
            );
        }

        if self.webhooks.port == Some(0) {
            problem("webhooks.port".into(), "must be a port from 1 to 65535".into());
        }
        if !self.webhooks.paths.is_empty() && !self.service_ports().contains(&self.webhooks.port()) {
            problem(
                "webhooks.port".into(),
                format!(
                    "{} is not a service's port or front (the box's firewall opens only those); set port = one of the services' ports, or give a service front = {{ port = {} }}",
                    self.webhooks.port(),
                    self.webhooks.port()
                ),
            );
        }
        for (name, path) in &self.webhooks.paths {
            if !is_program_name(name) {
                problem(format!("webhooks.{name}"), "callback names use a-z, 0-9, '-' and '_' (the endpoint's path: https://ENDPOINT/NAME)".into());
            }
            if !path.starts_with('/') || path.chars().any(|c| !c.is_ascii_graphic() || c == '?' || c == '#') {
                problem(format!("webhooks.{name}"), format!("{path:?} must be a path on the box starting with '/', e.g. \"/hooks/{name}\""));
            }
        }

        for (name, svc) in &self.services {
            for (field, globs) in [("install_on", &svc.install_on), ("restart_on", &svc.restart_on)] {
                for (i, g) in globs.iter().enumerate() {
                    if let Err(e) = globset::Glob::new(g) {
                        problem(format!("services.{name}.{field}[{i}]"), format!("{g:?} is not a glob ({e}); use e.g. \"src/**\""));
                    }
                }
            }
            if svc.install_on.is_empty() != svc.install.is_none() {
                problem(format!("services.{name}.install"), "install and install_on go together: the command, and the files whose change runs it".into());
            }
        }
        if let Some(path) = &self.sync.path {
            if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c == ".." || c == ".") {
                problem("sync.path".into(), format!("{path:?} must be a relative path below the box root without . or .., e.g. \"src/app\""));
            }
        }

        check_idle("idle", &self.idle, &mut problem);
        if let Some(team) = &self.team_idle {
            check_idle("team_idle", team, &mut problem);
        }
        out
    }
}

/// An idle policy's problems, its fields named under `section`.
fn check_idle(section: &str, idle: &IdlePolicy, problem: &mut impl FnMut(String, String)) {
    if idle.timeout() < Duration::from_secs(60) {
        problem(format!("{section}.timeout"), "must be at least 1m (the idle check runs once a minute)".into());
    }
    if idle.warning >= idle.timeout() {
        problem(format!("{section}.warning"), format!("must be shorter than {section}.timeout"));
    }
    if !(0.0..=100.0 * 1024.0).contains(&idle.cpu_percent) {
        problem(format!("{section}.cpu_percent"), "must be a percentage of one core, e.g. 25".into());
    }
    for (i, s) in idle.schedules.iter().enumerate() {
        let at = format!("{section}.schedules[{i}]");
        if let Err(e) = cron::Schedule::from_str(&s.cron) {
            problem(format!("{at}.cron"), format!("{:?} is not a cron expression ({e}); use seconds-first form, e.g. \"0 0 20 * * Mon-Fri\"", s.cron));
        }
        if s.timezone.parse::<chrono_tz::Tz>().is_err() {
            problem(format!("{at}.timezone"), format!("{:?} is not an IANA time zone; use e.g. \"Europe/Paris\" or \"UTC\"", s.timezone));
        }
        match (s.action, s.duration) {
            (ScheduleAction::Start, _) if section == "idle" => problem(
                format!("{at}.action"),
                "start windows are for team boxes (reap starts them); move it to [team_idle], or use \"keep\" to keep engineers' boxes up".into(),
            ),
            (ScheduleAction::Keep | ScheduleAction::Start, None) => {
                problem(format!("{at}.duration"), "missing; a keep or start window needs a duration such as \"9h\"".into())
            }
            (ScheduleAction::Stop, Some(_)) => problem(format!("{at}.duration"), "only keep and start windows have a duration; remove it".into()),
            _ => {}
        }
    }
}

/// An sqs store's queues (and only an sqs store has them): names that fit
/// SQS's 80 characters with the box's prefix (provider/queues.rs), whose
/// variables do not collide, and nothing to seed.
fn check_queues(at: &str, store: &Store, problem: &mut impl FnMut(String, String)) {
    if store.kind != StoreKind::Sqs {
        if !store.queues.is_empty() {
            problem(
                format!("{at}.queues"),
                format!("only an sqs store has queues; remove the field, or set kind = \"sqs\" (this is a {})", store.kind.as_str()),
            );
        }
        return;
    }
    if store.queues.is_empty() {
        problem(format!("{at}.queues"), "is empty; list the queues, e.g. queues = [\"emails\", \"payments.fifo\"]".into());
    }
    if store.seed.is_some() {
        problem(format!("{at}.seed"), "an sqs store has no snapshot (its queues start empty); remove the field".into());
    }
    let mut vars = BTreeMap::new();
    for (i, queue) in store.queues.iter().enumerate() {
        let base = queue.strip_suffix(".fifo").unwrap_or(queue);
        let valid = (1..=QUEUE_NAME_MAX).contains(&base.len())
            && base.starts_with(|c: char| c.is_ascii_lowercase())
            && base.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            problem(
                format!("{at}.queues[{i}]"),
                format!("{queue:?} is not a queue name; use 1-{QUEUE_NAME_MAX} characters from a-z, 0-9 and '-', starting with a letter, and \".fifo\" at the end for a FIFO queue"),
            );
        } else if base.ends_with("-dlq") {
            problem(
                format!("{at}.queues[{i}]"),
                format!("{queue:?}: every queue gets a dead-letter queue of its own (NAME_dlq, variable ..._NAME_DLQ_URL); rename it"),
            );
        } else if let Some(other) = vars.insert(base.replace('-', "_"), queue) {
            problem(
                format!("{at}.queues[{i}]"),
                format!("{queue:?} and {other:?} would share one variable (a FIFO queue's \".fifo\" is not in it); rename one"),
            );
        }
    }
}

fn is_program_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_variable_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Safe unquoted in SQL, shell and mongo namespaces; short enough for a
/// staging suffix within postgres' 63-byte limit.
fn is_identifier(s: &str) -> bool {
    s.len() <= 50 && s.starts_with(|c: char| c.is_ascii_lowercase()) && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_hostname(h: &str) -> Result<(), String> {
    if h.is_empty() || h.len() > 253 {
        return Err(format!("{h:?} must be 1-253 characters"));
    }
    for label in h.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{h:?} is not a hostname; use dot-separated labels of a-z, 0-9 and '-'"));
        }
    }
    if h.eq_ignore_ascii_case("localhost") {
        return Err("localhost cannot be pointed at a box".into());
    }
    Ok(())
}

fn dependency_cycle(services: &BTreeMap<String, Service>) -> Option<Vec<String>> {
    fn visit<'a>(name: &'a str, services: &'a BTreeMap<String, Service>, stack: &mut Vec<&'a str>, done: &mut BTreeSet<&'a str>) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| *s == name) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.into());
            return Some(cycle);
        }
        if !done.insert(name) {
            return None;
        }
        stack.push(name);
        for dep in services.get(name).map(|s| s.depends_on.as_slice()).unwrap_or_default() {
            if let Some(c) = visit(dep, services, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    services.keys().find_map(|name| visit(name, services, &mut Vec::new(), &mut done))
}
