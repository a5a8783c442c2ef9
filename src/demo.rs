//! Demo data for `serve --demo`: an org on a paid edition in a non-UTC zone, three users, an API
//! token, a limit first set 90 days ago and 90 days of usage recorded through the ledger's
//! admission code, so the numbers obey the same rules as real traffic.

use crate::domain::types::OrgId;
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::db::DbConn;
use crate::domain::allowance::{Allowance, Edition};
use crate::domain::calendar;
use crate::domain::types::AdditionalLimit;
use crate::ledger::{self, Kind, UsageRequest};
use crate::secrets;
use crate::store::limits;
use crate::store::orgs::{self, NewOrg};
use crate::store::users::{self, Role};

pub const DEMO_ZONE: chrono_tz::Tz = chrono_tz::America::New_York;
const DEMO_USERS: [(&str, Role); 3] = [
    ("owner@northwind.example", Role::SuperAdmin),
    ("admin@northwind.example", Role::Admin),
    ("dev@northwind.example", Role::User),
];
const OPERATIONS: [(&str, u32); 5] = [
    ("search", 40),
    ("geocode", 25),
    ("translate", 15),
    ("ocr", 12),
    ("embeddings", 8),
];
const CLIENTS: [(&str, u32); 4] = [
    ("web-app", 45),
    ("mobile-ios", 25),
    ("batch-etl", 20),
    ("partner-portal", 10),
];
/// The gateway's end users; an empty one is usage that names no user.
const END_USERS: [(&str, u32); 6] = [
    ("maria.silva", 24),
    ("kenji.tanaka", 18),
    ("amira.haddad", 14),
    ("lukas.becker", 10),
    ("svc-nightly-sync", 14),
    ("", 20),
];

pub struct DemoUser {
    pub email: &'static str,
    pub password: String,
    pub role: Role,
}

pub struct Demo {
    pub org_id: OrgId,
    pub users: Vec<DemoUser>,
    /// A new token when the demo was created now; `None` when it existed already.
    pub token: Option<String>,
    pub events: usize,
}

fn new_password() -> String {
    secrets::random_password(16)
}

/// Fill an empty database with the demo; on a database that has the demo already, give its users
/// new passwords (the old ones were never stored) and leave everything else.
pub fn load(conn: &mut DbConn, now: DateTime<Utc>) -> Result<Demo> {
    if let Some(owner) = users::find_by_email(conn, DEMO_USERS[0].0)? {
        let mut list = Vec::new();
        for (email, role) in DEMO_USERS {
            let password = new_password();
            let hash = secrets::hash_password(&password).map_err(anyhow::Error::msg)?;
            users::set_password(conn, email, &hash)?;
            list.push(DemoUser {
                email,
                password,
                role,
            });
        }
        return Ok(Demo {
            org_id: owner.org_id,
            users: list,
            token: None,
            events: 0,
        });
    }
    if !orgs::list(conn)?.is_empty() {
        bail!(
            "--demo needs an empty database, and this one has orgs but no demo org: use another --database"
        );
    }
    create(conn, now)
}

fn create(conn: &mut DbConn, now: DateTime<Utc>) -> Result<Demo> {
    let today = calendar::local_day(now, DEMO_ZONE);
    let created = calendar::day_start(today - Duration::days(120), DEMO_ZONE);
    let org = NewOrg {
        name: "Northwind Analytics".into(),
        zone: DEMO_ZONE,
        allowance: Allowance {
            edition: Edition::Professional,
            licences: 20,
            add_on_credits: 0,
        },
    };
    let org_id = orgs::create(conn, &org, created).context("demo org")?;
    let mut list = Vec::new();
    for (email, role) in DEMO_USERS {
        let password = new_password();
        let hash = secrets::hash_password(&password).map_err(anyhow::Error::msg)?;
        users::add(conn, org_id, email, role, &hash, created).context("demo user")?;
        list.push(DemoUser {
            email,
            password,
            role,
        });
    }
    let token = users::create_token(conn, org_id, created).context("demo token")?;

    // The limit: first set 90 days ago, raised five weeks ago.
    let first_set = calendar::day_start(today - Duration::days(90), DEMO_ZONE) + Duration::hours(9);
    let raised = calendar::day_start(today - Duration::days(35), DEMO_ZONE) + Duration::hours(14);
    let owner = DEMO_USERS[0].0;
    limits::set(
        conn,
        org_id,
        AdditionalLimit::new(150_000)?,
        owner,
        first_set,
        calendar::local_day(first_set, DEMO_ZONE),
    )
    .context("limit 1")?;
    limits::set(
        conn,
        org_id,
        AdditionalLimit::new(200_000)?,
        owner,
        raised,
        calendar::local_day(raised, DEMO_ZONE),
    )
    .context("limit 2")?;

    let free_allowance = org.allowance.daily_free_credits();
    let mut rng = StdRng::seed_from_u64(20261124);
    let mut events = 0;
    for days_ago in (0..90).rev() {
        let local_day = today - Duration::days(days_ago);
        let limit = if days_ago >= 35 { 150_000 } else { 200_000 };
        let requests = day_of_usage(&mut rng, org_id, local_day, free_allowance, limit, now);
        events += requests.len();
        for batch in requests.chunks(1000) {
            ledger::apply_batch(conn, now, batch).context("usage")?;
        }
    }
    Ok(Demo {
        org_id,
        users: list,
        token: Some(token),
        events,
    })
}

fn pick<'a>(rng: &mut StdRng, weighted: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = weighted.iter().map(|(_, w)| w).sum();
    let mut roll = rng.gen_range(0..total);
    for (name, weight) in weighted {
        if roll < *weight {
            return name;
        }
        roll -= weight;
    }
    weighted[0].0
}

/// One day's events: weekdays mostly past the free credits, weekends inside them, a few days that
/// run into the limit. Business hours get most of the traffic. Today stops at `now`.
fn day_of_usage(
    rng: &mut StdRng,
    org_id: OrgId,
    local_day: NaiveDate,
    free: i64,
    limit: i64,
    now: DateTime<Utc>,
) -> Vec<UsageRequest> {
    let weekend = matches!(local_day.weekday(), Weekday::Sat | Weekday::Sun);
    let target = if weekend {
        rng.gen_range(free * 3 / 10..free * 8 / 10)
    } else if rng.gen_ratio(1, 9) {
        free + limit + rng.gen_range(0..20_000) // runs into the limit: the last calls are refused
    } else {
        free + rng.gen_range(limit / 10..limit * 8 / 10)
    };
    let start = calendar::day_start(local_day, DEMO_ZONE);
    let length = calendar::day_length(local_day, DEMO_ZONE).num_seconds();
    let mut requests = Vec::new();
    let mut total = 0;
    let mut n = 0;
    while total < target {
        let credits = rng.gen_range(200..3_000).min(target - total).max(1);
        // Busier from 08:00 to 19:00 local time.
        let second = if rng.gen_ratio(3, 4) {
            rng.gen_range(8 * 3600..19 * 3600)
        } else {
            rng.gen_range(0..length)
        };
        let occurred_at = start + Duration::seconds(second.min(length - 1));
        total += credits;
        n += 1;
        if occurred_at > now {
            continue;
        }
        requests.push(UsageRequest {
            org_id,
            kind: Kind::Metered,
            event_id: Some(format!("demo-{local_day}-{n}")),
            occurred_at,
            credits,
            operation: pick(rng, &OPERATIONS).to_string(),
            client: pick(rng, &CLIENTS).to_string(),
            user: pick(rng, &END_USERS).to_string(),
        });
    }
    requests.sort_by_key(|r| r.occurred_at);
    requests
}
