//! A small sequential reference model of R4, R9, R11 and R12, written apart from the product's
//! own rules, and generated workloads that drive two real server processes on one database with
//! it: played in order, every answer must be the model's; played from many threads at once, the
//! ledger's invariants must hold (nothing past free + limit, every admitted id counted once,
//! `duplicate` only for an admitted id, rollups equal to raw events and breakdowns, statement
//! totals equal to their lines).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use creditmeter::db::DbConn;
use creditmeter::db::schema::{
    daily_breakdown, daily_usage, daily_user_breakdown, statements, usage_events, usage_keys,
};
use creditmeter::domain::allowance::Edition;
use creditmeter::domain::types::OrgId;
use diesel::prelude::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

use super::{NOW, Server, TestDb, api_at, create_org, now, set_limit};

/// The credits an id always carries, so that a sum over ids can be checked under any interleaving.
const CREDITS: [i64; 3] = [1_000, 7_000, 20_000];

fn credits_of(id: u8) -> i64 {
    CREDITS[id as usize % CREDITS.len()]
}

/// When a generated event happened, relative to the servers' fixed clock.
#[derive(Debug, Clone, Copy)]
enum When {
    /// An hour before now: today, with the limit as the history had it before the workload.
    TodayBefore,
    /// An hour after now: today, with every limit change of the workload in force.
    TodayAfter,
    DaysAgo(i64),
    /// Within the next 24 hours, on the org's next local day.
    Tomorrow,
    /// A day of org 0's first billing period, which has a statement.
    ClosedPeriod,
    /// Before the first price plan.
    Ancient,
    /// More than 24 hours ahead.
    Future,
}

impl When {
    fn at(self) -> DateTime<Utc> {
        let now = now();
        match self {
            When::TodayBefore => now - Duration::hours(1),
            When::TodayAfter => now + Duration::hours(1),
            When::DaysAgo(days) => now - Duration::days(days),
            When::Tomorrow => now + Duration::hours(20),
            When::ClosedPeriod => now - Duration::days(15),
            When::Ancient => "1900-01-01T00:00:00Z".parse().unwrap(),
            When::Future => now + Duration::hours(30),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Consume {
        org: usize,
        id: Option<u8>,
        credits: i64,
    },
    Usage {
        org: usize,
        events: Vec<(u8, When)>,
    },
    SetLimit {
        org: usize,
        limit: i64,
    },
    SetLicences {
        org: usize,
        licences: i64,
    },
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        4 => Just(When::TodayBefore),
        4 => Just(When::TodayAfter),
        3 => (1i64..4).prop_map(When::DaysAgo),
        2 => Just(When::Tomorrow),
        1 => Just(When::ClosedPeriod),
        1 => Just(When::Ancient),
        1 => Just(When::Future),
    ]
}

fn op(with_allowance_changes: bool) -> impl Strategy<Value = Op> {
    let org = 0usize..2;
    let id = 0u8..12;
    prop_oneof![
        8 => (org.clone(), proptest::option::weighted(0.7, id.clone()), proptest::sample::select(CREDITS.to_vec()))
            .prop_map(|(org, id, credits)| Op::Consume { org, credits: id.map_or(credits, credits_of), id }),
        4 => (org.clone(), proptest::collection::vec((id, when()), 1..6))
            .prop_map(|(org, events)| Op::Usage { org, events }),
        1 => (org.clone(), proptest::sample::select(vec![0i64, 5_000, 30_000, 100_000]))
            .prop_map(|(org, limit)| Op::SetLimit { org, limit }),
        (if with_allowance_changes { 1 } else { 0 }) => (org, 0i64..200)
            .prop_map(|(org, licences)| Op::SetLicences { org, licences }),
    ]
}

/// Two orgs: a standard one in UTC whose first billing period is closed, and a professional one in
/// New York; their limit histories reach back before the workload.
struct World {
    db: TestDb,
    orgs: Vec<(OrgId, String)>,
    servers: [Server; 2],
    model: Model,
}

impl World {
    fn new(db: TestDb) -> World {
        let mut conn = db.conn();
        let a = create_org(
            &mut conn,
            Edition::Standard,
            0,
            "UTC",
            now() - Duration::days(60),
        );
        let b = create_org(
            &mut conn,
            Edition::Professional,
            4,
            "America/New_York",
            now() - Duration::days(60),
        );
        set_limit(&mut conn, a.0, 10_000, now() - Duration::days(40));
        set_limit(&mut conn, a.0, 20_000, now() - Duration::hours(36));
        set_limit(&mut conn, b.0, 5_000, now() - Duration::days(3));
        let issued = creditmeter::billing::close_due(&mut conn, now(), None).unwrap();
        assert_eq!(issued.len(), 1, "org 0's first period is closed");
        let model = Model {
            orgs: vec![
                OrgModel::new("UTC", Edition::Standard, 0, now() - Duration::days(60))
                    .with_limits(&[
                        (now() - Duration::days(40), 10_000),
                        (now() - Duration::hours(36), 20_000),
                    ])
                    .with_closed("2026-01-29", "2026-02-28"),
                OrgModel::new(
                    "America/New_York",
                    Edition::Professional,
                    4,
                    now() - Duration::days(60),
                )
                .with_limits(&[(now() - Duration::days(3), 5_000)]),
            ],
        };
        let servers = [
            Server::start(db.url(), Some(NOW)),
            Server::start(db.url(), Some(NOW)),
        ];
        World {
            db,
            orgs: vec![a, b],
            servers,
            model,
        }
    }

    /// Play one op on server `server` (or on the database, for the operator's changes) and
    /// return what it answered, in the model's terms.
    fn play(&self, op: &Op, server: usize) -> Vec<Answer> {
        let port = self.servers[server % 2].port;
        match op {
            Op::Consume { org, id, credits } => {
                let mut body = json!({"credits": credits});
                if let Some(id) = id {
                    body["id"] = json!(format!("e{id}"));
                }
                // Two of three calls name a user.
                if credits % 3 != 0 {
                    body["user"] = json!(format!("u{}", credits % 3));
                }
                let r = api_at(
                    port,
                    "POST",
                    "/api/v1/consume",
                    &self.orgs[*org].1,
                    &body.to_string(),
                );
                let v = r.json();
                vec![match r.status {
                    200 => Answer::Allowed {
                        free_remaining: v["free_remaining"].as_i64().unwrap(),
                        additional_remaining: v["additional_remaining"].as_i64().unwrap(),
                    },
                    429 => Answer::Refused(format!(
                        "CREDITS_EXHAUSTED/{}",
                        v["limit"].as_str().unwrap()
                    )),
                    status => panic!("consume answered {status}: {}", r.body),
                }]
            }
            Op::Usage { org, events } => {
                let body: Vec<Value> = events
                    .iter()
                    .map(|(id, when)| {
                        let mut event = json!({"id": format!("e{id}"), "timestamp": when.at().to_rfc3339(), "credits": credits_of(*id)});
                        if id % 3 != 0 {
                            event["user"] = json!(format!("u{}", id % 3));
                        }
                        event
                    })
                    .collect();
                let r = api_at(
                    port,
                    "POST",
                    "/api/v1/usage",
                    &self.orgs[*org].1,
                    &json!(body).to_string(),
                );
                assert_eq!(r.status, 200, "{}", r.body);
                r.json()["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|result| match result["status"].as_str().unwrap() {
                        "accepted" => Answer::Accepted,
                        "duplicate" => Answer::Duplicate,
                        _ => Answer::Refused(result["reason"].as_str().unwrap().to_string()),
                    })
                    .collect()
            }
            Op::SetLimit { org, limit } => {
                set_limit(&mut self.db.conn(), self.orgs[*org].0, *limit, now());
                Vec::new()
            }
            Op::SetLicences { org, licences } => {
                let change = creditmeter::store::orgs::OrgUpdate {
                    licences: Some(*licences),
                    ..Default::default()
                };
                creditmeter::store::orgs::update(
                    &mut self.db.conn(),
                    self.orgs[*org].0,
                    &change,
                    now(),
                )
                .unwrap();
                Vec::new()
            }
        }
    }
}

/// An answer as the model predicts it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// A consume admitted, or its id admitted before.
    Allowed {
        free_remaining: i64,
        additional_remaining: i64,
    },
    Accepted,
    Duplicate,
    /// A reason code (`LIMIT_EXCEEDED`, ...) or, for a consume, `CREDITS_EXHAUSTED/<limit>`.
    Refused(String),
}

struct Model {
    orgs: Vec<OrgModel>,
}

struct OrgModel {
    zone: Tz,
    edition: Edition,
    /// (first day, free credits); the first entry also covers the days before it.
    allowances: Vec<(NaiveDate, i64)>,
    /// (from, limit), oldest first.
    limits: Vec<(DateTime<Utc>, i64)>,
    closed: Vec<(NaiveDate, NaiveDate)>,
    /// (free used, additional used) per org-local day.
    days: HashMap<NaiveDate, (i64, i64)>,
    admitted: HashSet<u8>,
}

impl OrgModel {
    fn new(zone: &str, edition: Edition, licences: i64, created: DateTime<Utc>) -> OrgModel {
        let zone: Tz = zone.parse().unwrap();
        let mut org = OrgModel {
            zone,
            edition,
            allowances: Vec::new(),
            limits: Vec::new(),
            closed: Vec::new(),
            days: HashMap::new(),
            admitted: HashSet::new(),
        };
        org.allowances.push((
            created.with_timezone(&zone).date_naive(),
            org.free_of(licences),
        ));
        org
    }

    fn with_limits(mut self, limits: &[(DateTime<Utc>, i64)]) -> Self {
        self.limits.extend_from_slice(limits);
        self
    }

    fn with_closed(mut self, from: &str, to_exclusive: &str) -> Self {
        self.closed
            .push((from.parse().unwrap(), to_exclusive.parse().unwrap()));
        self
    }

    /// R1 for the two editions the workloads use.
    fn free_of(&self, licences: i64) -> i64 {
        match self.edition {
            Edition::Standard => (50_000 + 250 * licences).min(100_000),
            Edition::Professional => (50_000 + 500 * licences).min(3_000_000),
            other => panic!("the model has no {other}"),
        }
    }

    fn day_of(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone).date_naive()
    }

    fn free_on(&self, day: NaiveDate) -> i64 {
        self.allowances
            .iter()
            .rev()
            .find(|(from, _)| *from <= day)
            .unwrap_or(&self.allowances[0])
            .1
    }

    fn limit_at(&self, at: DateTime<Utc>) -> i64 {
        self.limits
            .iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .map_or(0, |(_, l)| *l)
    }

    fn current_limit(&self) -> i64 {
        self.limits.last().map_or(0, |(_, l)| *l)
    }

    /// R12 placement, R9, then R4: one request, in order.
    fn request(&mut self, id: Option<u8>, at: DateTime<Utc>, credits: i64, live: bool) -> Answer {
        if at > now() + Duration::hours(24) {
            return Answer::Refused("FUTURE_TIMESTAMP".into());
        }
        let day = self.day_of(at);
        if self
            .closed
            .iter()
            .any(|(from, to)| *from <= day && day < *to)
        {
            return Answer::Refused("PERIOD_CLOSED".into());
        }
        if day < NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() {
            return Answer::Refused("NO_PRICE_PLAN".into());
        }
        let free = self.free_on(day);
        let limit = if live {
            self.current_limit()
        } else {
            self.limit_at(at)
        };
        let (free_used, additional_used) = self.days.get(&day).copied().unwrap_or_default();
        let remaining = |free_used: i64, additional_used: i64| Answer::Allowed {
            free_remaining: (free - free_used).max(0),
            additional_remaining: (limit - additional_used).max(0),
        };
        if id.is_some_and(|id| self.admitted.contains(&id)) {
            return if live {
                remaining(free_used, additional_used)
            } else {
                Answer::Duplicate
            };
        }
        let from_free = credits.min((free - free_used).max(0));
        let additional = credits - from_free;
        if additional > 0 && additional > (limit - additional_used).max(0) {
            return Answer::Refused(if live {
                format!(
                    "CREDITS_EXHAUSTED/{}",
                    if limit == 0 { "free" } else { "additional" }
                )
            } else {
                "LIMIT_EXCEEDED".into()
            });
        }
        self.days
            .insert(day, (free_used + from_free, additional_used + additional));
        self.admitted.extend(id);
        if live {
            remaining(free_used + from_free, additional_used + additional)
        } else {
            Answer::Accepted
        }
    }
}

impl Model {
    fn play(&mut self, op: &Op) -> Vec<Answer> {
        match op {
            Op::Consume { org, id, credits } => {
                vec![self.orgs[*org].request(*id, now(), *credits, true)]
            }
            Op::Usage { org, events } => {
                // Within one request, in timestamp order; answers in the request's order.
                let mut order: Vec<usize> = (0..events.len()).collect();
                order.sort_by_key(|&i| events[i].1.at());
                let mut answers = vec![Answer::Accepted; events.len()];
                for i in order {
                    let (id, when) = events[i];
                    answers[i] =
                        self.orgs[*org].request(Some(id), when.at(), credits_of(id), false);
                }
                answers
            }
            Op::SetLimit { org, limit } => {
                self.orgs[*org].limits.push((now(), *limit));
                Vec::new()
            }
            Op::SetLicences { org, licences } => {
                let org = &mut self.orgs[*org];
                let tomorrow = org.day_of(now()).succ_opt().unwrap();
                let free = org.free_of(*licences);
                org.allowances.retain(|(from, _)| *from != tomorrow);
                org.allowances.push((tomorrow, free));
                Vec::new()
            }
        }
    }
}

/// Cases per backend; each starts two server processes on a fresh database.
const SEQUENTIAL_CASES: u32 = 40;
const CONCURRENT_CASES: u32 = 16;

/// What the generated workloads of one test played, told on stderr (past the test harness's
/// capture) once its last case has run, so that every run says how much it checked.
#[derive(Default)]
struct Tally {
    cases: u32,
    runs: u32,
    ops: usize,
    answers: BTreeMap<String, usize>,
}

impl Tally {
    fn add(
        tally: &std::sync::Mutex<Tally>,
        test: &str,
        cases: u32,
        runs: u32,
        played: &[(Op, Vec<Answer>)],
    ) {
        use std::io::Write;
        let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.cases += 1;
        tally.runs += runs;
        tally.ops += played.len();
        for answer in played.iter().flat_map(|(_, answers)| answers) {
            let kind = match answer {
                Answer::Allowed { .. } => "allowed".to_string(),
                Answer::Accepted => "accepted".to_string(),
                Answer::Duplicate => "duplicate".to_string(),
                Answer::Refused(reason) => reason.clone(),
            };
            *tally.answers.entry(kind).or_default() += 1;
        }
        if tally.cases == cases {
            let line = format!(
                "{test}: {} generated workloads, {} runs of two servers (SQLite{}), {} operations; answers: {:?}\n",
                tally.cases,
                tally.runs,
                if tally.runs > tally.cases {
                    " and PostgreSQL"
                } else {
                    " only"
                },
                tally.ops,
                tally.answers
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

static SEQUENTIAL: std::sync::Mutex<Tally> = std::sync::Mutex::new(Tally {
    cases: 0,
    runs: 0,
    ops: 0,
    answers: BTreeMap::new(),
});
static CONCURRENT: std::sync::Mutex<Tally> = std::sync::Mutex::new(Tally {
    cases: 0,
    runs: 0,
    ops: 0,
    answers: BTreeMap::new(),
});

proptest! {
    #![proptest_config(ProptestConfig { cases: SEQUENTIAL_CASES, failure_persistence: None, ..ProptestConfig::default() })]

    /// Played in order, alternating between the two servers, every answer is the model's.
    #[test]
    fn the_servers_answer_as_the_model_does(
        ops in proptest::collection::vec((op(true), 0usize..2), 1..40),
    ) {
        let databases = super::databases();
        let runs = databases.len() as u32;
        let mut played = Vec::new();
        for db in databases {
            let url = db.url().to_string();
            let mut world = World::new(db);
            for (step, (op, server)) in ops.iter().enumerate() {
                let expected = world.model.play(op);
                let answered = world.play(op, *server);
                prop_assert_eq!(&answered, &expected, "{}: step {} {:?}", url, step, op);
                played.push((op.clone(), answered));
            }
            assert_ledger_consistent(&mut world.db.conn());
        }
        Tally::add(&SEQUENTIAL, "model, in order", SEQUENTIAL_CASES, runs, &played);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CONCURRENT_CASES, failure_persistence: None, ..ProptestConfig::default() })]

    /// Played by six threads over both servers at once, the invariants hold.
    #[test]
    fn any_interleaving_keeps_the_invariants(
        ops in proptest::collection::vec(op(false), 20..80),
    ) {
        let databases = super::databases();
        let runs = databases.len() as u32;
        let mut all = Vec::new();
        for db in databases {
            let world = std::sync::Arc::new(World::new(db));
            let threads: Vec<_> = (0..6)
                .map(|t| {
                    let (world, ops) = (world.clone(), ops.clone());
                    std::thread::spawn(move || {
                        ops.iter()
                            .skip(t)
                            .step_by(6)
                            .map(|op| (op.clone(), world.play(op, t)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let played: Vec<(Op, Vec<Answer>)> =
                threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
            check_interleaving(&world, &played);
            all.extend(played);
        }
        Tally::add(&CONCURRENT, "model, six threads at once", CONCURRENT_CASES, runs, &all);
    }
}

/// The invariants of a concurrent run: per org, what the days used equals the credits of every
/// acknowledged id once plus the acknowledged consumes without id; `duplicate` and an admitted
/// retry only for an id that has a key; no day past its free allowance or past the highest limit
/// the org ever had.
fn check_interleaving(world: &World, played: &[(Op, Vec<Answer>)]) {
    let mut conn = world.db.conn();
    assert_ledger_consistent(&mut conn);
    for (index, (org_id, _)) in world.orgs.iter().enumerate() {
        let mut acknowledged_ids: HashSet<u8> = HashSet::new();
        let mut without_id = 0;
        let mut must_be_admitted: HashSet<u8> = HashSet::new();
        for (op, answers) in played {
            match op {
                Op::Consume { org, id, credits } if *org == index => {
                    if let [Answer::Allowed { .. }] = answers.as_slice() {
                        match id {
                            Some(id) => {
                                acknowledged_ids.insert(*id);
                                must_be_admitted.insert(*id);
                            }
                            None => without_id += credits,
                        }
                    }
                }
                Op::Usage { org, events } if *org == index => {
                    for ((id, _), answer) in events.iter().zip(answers) {
                        if matches!(answer, Answer::Accepted | Answer::Duplicate) {
                            acknowledged_ids.insert(*id);
                            must_be_admitted.insert(*id);
                        }
                    }
                }
                _ => {}
            }
        }
        let keys: HashSet<u8> = usage_keys::table
            .filter(usage_keys::org_id.eq(org_id))
            .select(usage_keys::event_id)
            .load::<String>(&mut conn)
            .unwrap()
            .iter()
            .map(|k| k[1..].parse().unwrap())
            .collect();
        assert!(
            must_be_admitted.is_subset(&keys),
            "an id answered as counted has a key"
        );
        assert_eq!(
            keys, acknowledged_ids,
            "every key was acknowledged to someone"
        );
        let used: Vec<(NaiveDate, i64, i64, i64)> = daily_usage::table
            .filter(daily_usage::org_id.eq(org_id))
            .select((
                daily_usage::local_day,
                daily_usage::credits,
                daily_usage::free_credits,
                daily_usage::additional,
            ))
            .load(&mut conn)
            .unwrap();
        let total: i64 = used.iter().map(|d| d.1).sum();
        let expected: i64 = acknowledged_ids
            .iter()
            .map(|id| credits_of(*id))
            .sum::<i64>()
            + without_id;
        assert_eq!(
            total, expected,
            "org {index}: used equals what was acknowledged"
        );
        let model = &world.model.orgs[index];
        let highest_limit = played
            .iter()
            .filter_map(|(op, _)| match op {
                Op::SetLimit { org, limit } if *org == index => Some(*limit),
                _ => None,
            })
            .chain(model.limits.iter().map(|(_, l)| *l))
            .max()
            .unwrap_or(0);
        for (day, _, free, additional) in used {
            assert!(
                free <= model.free_on(day),
                "org {index} {day}: free {free} within the allowance"
            );
            assert!(
                additional <= highest_limit,
                "org {index} {day}: additional {additional} within {highest_limit}"
            );
        }
    }
}

/// What holds of any ledger, whatever was played: each day row's counters equal its raw events and
/// its breakdowns, each user's day equals the raw events that name that user, its amount is its plan's price of its additional credits (one rounding), no
/// (org, id) has two events, every key has its event, and every statement's total is the sum of
/// its lines.
pub fn assert_ledger_consistent(conn: &mut DbConn) {
    let days: Vec<(i64, NaiveDate, i64, i64, i64, i64, i64)> = daily_usage::table
        .select((
            daily_usage::org_id,
            daily_usage::local_day,
            daily_usage::credits,
            daily_usage::free_credits,
            daily_usage::additional,
            daily_usage::amount_minor,
            daily_usage::plan_id,
        ))
        .load(conn)
        .unwrap();
    let mut events: BTreeMap<(i64, NaiveDate), (i64, i64, i64)> = BTreeMap::new();
    for (org, day, credits, free, additional) in usage_events::table
        .select((
            usage_events::org_id,
            usage_events::local_day,
            usage_events::credits,
            usage_events::free_credits,
            usage_events::additional,
        ))
        .load::<(i64, NaiveDate, i64, i64, i64)>(conn)
        .unwrap()
    {
        let sum = events.entry((org, day)).or_default();
        *sum = (sum.0 + credits, sum.1 + free, sum.2 + additional);
    }
    let mut breakdowns: BTreeMap<(i64, NaiveDate), (i64, i64)> = BTreeMap::new();
    for (org, day, credits, additional) in daily_breakdown::table
        .select((
            daily_breakdown::org_id,
            daily_breakdown::local_day,
            daily_breakdown::credits,
            daily_breakdown::additional,
        ))
        .load::<(i64, NaiveDate, i64, i64)>(conn)
        .unwrap()
    {
        let sum = breakdowns.entry((org, day)).or_default();
        *sum = (sum.0 + credits, sum.1 + additional);
    }
    let mut by_user: BTreeMap<(i64, NaiveDate, String), (i64, i64)> = BTreeMap::new();
    for (org, day, user, credits, additional) in usage_events::table
        .filter(usage_events::user_ref.ne(""))
        .select((
            usage_events::org_id,
            usage_events::local_day,
            usage_events::user_ref,
            usage_events::credits,
            usage_events::additional,
        ))
        .load::<(i64, NaiveDate, String, i64, i64)>(conn)
        .unwrap()
    {
        let sum = by_user.entry((org, day, user)).or_default();
        *sum = (sum.0 + credits, sum.1 + additional);
    }
    let user_rows: BTreeMap<(i64, NaiveDate, String), (i64, i64)> = daily_user_breakdown::table
        .select((
            daily_user_breakdown::org_id,
            daily_user_breakdown::local_day,
            daily_user_breakdown::user_ref,
            daily_user_breakdown::credits,
            daily_user_breakdown::additional,
        ))
        .load::<(i64, NaiveDate, String, i64, i64)>(conn)
        .unwrap()
        .into_iter()
        .map(|(org, day, user, credits, additional)| ((org, day, user), (credits, additional)))
        .collect();
    assert_eq!(
        user_rows, by_user,
        "user rollups = raw events naming a user"
    );
    for (org, day, credits, free, additional, amount, plan_id) in days {
        assert_eq!(
            credits,
            free + additional,
            "org {org} {day}: credits = free + additional"
        );
        assert_eq!(
            events.remove(&(org, day)).unwrap_or_default(),
            (credits, free, additional),
            "org {org} {day}: rollup = raw events"
        );
        assert_eq!(
            breakdowns.remove(&(org, day)).unwrap_or_default(),
            (credits, additional),
            "org {org} {day}: rollup = breakdowns"
        );
        let plan = creditmeter::store::plans::by_id(conn, plan_id).unwrap();
        assert_eq!(
            amount,
            plan.day_charge_minor(additional),
            "org {org} {day}: amount"
        );
    }
    assert!(
        events.is_empty(),
        "raw events without a day row: {events:?}"
    );
    assert!(
        breakdowns.is_empty(),
        "breakdowns without a day row: {breakdowns:?}"
    );

    let ids: Vec<(i64, Option<String>)> = usage_events::table
        .select((usage_events::org_id, usage_events::event_id))
        .load(conn)
        .unwrap();
    let mut with_id: HashSet<(i64, String)> = HashSet::new();
    for (org, id) in ids {
        if let Some(id) = id {
            assert!(
                with_id.insert((org, id.clone())),
                "org {org}: id {id} counted twice"
            );
        }
    }
    let keys: Vec<(i64, String)> = usage_keys::table
        .select((usage_keys::org_id, usage_keys::event_id))
        .load(conn)
        .unwrap();
    for key in keys {
        assert!(with_id.contains(&key), "key {key:?} without its event");
    }

    for (number, total, lines) in statements::table
        .select((
            statements::number,
            statements::total_minor,
            statements::lines_json,
        ))
        .load::<(String, i64, String)>(conn)
        .unwrap()
    {
        let lines: Vec<Value> = serde_json::from_str(&lines).unwrap();
        let sum: i64 = lines
            .iter()
            .map(|l| l["amount_minor"].as_i64().unwrap())
            .sum();
        assert_eq!(total, sum, "statement {number}: total = its lines");
    }
}
