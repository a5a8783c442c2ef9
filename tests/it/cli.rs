//! The operator CLI, run as a user would: the real binary on a fresh SQLite file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use creditmeter::cli::Cli;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_with(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_creditmeter"));
    cmd.args(args)
        .env_remove("CREDITMETER_DATABASE")
        .env_remove("CREDITMETER_NOW");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("binary starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "panic in {args:?}: {}",
        run.stderr
    );
    run
}

fn run(args: &[&str]) -> Run {
    run_with(args, None, &[])
}

fn quote_json(credits: &str, plan: Option<&Path>) -> serde_json::Value {
    let mut args = vec!["quote", "--credits", credits, "--json"];
    let plan_arg;
    if let Some(p) = plan {
        plan_arg = p.display().to_string();
        args.extend(["--plan", &plan_arg]);
    }
    let out = run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("quote --json prints JSON")
}

fn db_url(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("creditmeter.db");
    let url = format!("sqlite://{}", path.display());
    (path, url)
}

/// A bad call fails with exit code != 0 and one line on stderr.
fn assert_refused(out: &Run, expected: &str) {
    assert_ne!(out.code, 0);
    let lines = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with("warning: CREDITMETER_NOW"))
        .count();
    assert_eq!(lines, 1, "one line expected, got {:?}", out.stderr);
    assert!(
        out.stderr.contains(expected),
        "{expected:?} not in {:?}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn verify_cli() {
    Cli::command().debug_assert();
}

#[test]
fn r5_quote_gives_the_worked_values() {
    let q = quote_json("80000", None);
    assert_eq!(q["amount"], "6.80");
    let lines: Vec<&str> = q["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["3.50", "3.30"]);
    let q = quote_json("12345", None);
    assert_eq!(
        (q["amount"].as_str(), q["exact"].as_str()),
        (Some("1.73"), Some("1.7283"))
    );
    assert_eq!(quote_json("100000", None)["amount"], "8.00");
    assert_eq!(quote_json("500000", None)["amount"], "21.75");
    assert_eq!(quote_json("1", None)["amount"], "0.00");
    assert_eq!(quote_json("12345", None)["credits"], 12345);
}

#[test]
fn r6_quote_honours_a_plan_file_with_a_flat_fee() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "currency = \"USD\"\nblock = 1000\n[[tiers]]\nup_to = 25000\nprice = \"0.14\"\n\
         [[tiers]]\nprice = \"0.06\"\nflat = \"2.00\"\n",
    )
    .unwrap();
    assert_eq!(quote_json("25000", Some(&plan))["amount"], "3.50");
    // 80,000 enters the second tier: 3.50 + 55,000 × 0.06 / 1,000 + 2.00 flat.
    let q = quote_json("80000", Some(&plan));
    assert_eq!(q["amount"], "8.80");
    assert_eq!(q["lines"][1]["flat"], "2.00");
}

#[test]
fn bad_input_gets_one_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let bad_plan = dir.path().join("bad.toml");
    std::fs::write(
        &bad_plan,
        "currency = \"USD\"\nblock = 1000\n[[tiers]]\nup_to = 10\nprice = \"-1\"\n",
    )
    .unwrap();
    let bad = bad_plan.display().to_string();
    assert_refused(&run(&["quote", "--credits", "5", "--plan", &bad]), "price");
    std::fs::write(&bad_plan, "this is not toml [").unwrap();
    assert_refused(
        &run(&["quote", "--credits", "5", "--plan", &bad]),
        "not valid TOML",
    );
    assert_refused(&run(&["quote", "--credits", "-5"]), "negative");
    assert_refused(&run(&["quote", "--credits", "abc"]), "whole number");
    assert_refused(&run(&["quote", "--credits", "1.5"]), "whole number");
    assert_refused(
        &run(&["quote", "--credits", "99999999999999999999"]),
        "whole number",
    );

    let (path, url) = db_url(dir.path());
    // An org name with a line break would forge lines in logs and PDFs (issue 15).
    assert_refused(
        &run(&[
            "org",
            "create",
            "--name",
            "a\r\nb",
            "--edition",
            "standard",
            "--database",
            &url,
        ]),
        "control characters",
    );
    assert_refused(
        &run(&[
            "org",
            "create",
            "--name",
            "A",
            "--edition",
            "gold",
            "--database",
            &url,
        ]),
        "unknown edition",
    );
    assert_refused(
        &run(&[
            "org",
            "create",
            "--name",
            "A",
            "--edition",
            "standard",
            "--timezone",
            "Mars/Base",
            "--database",
            &url,
        ]),
        "unknown time zone",
    );
    assert_refused(
        &run(&[
            "org",
            "create",
            "--name",
            "A",
            "--edition",
            "standard",
            "--licences",
            "-3",
            "--database",
            &url,
        ]),
        "negative",
    );
    assert_refused(
        &run(&[
            "org",
            "create",
            "--name",
            "A",
            "--edition",
            "standard",
            "--database",
            "mysql://x",
        ]),
        "unsupported database URL",
    );
    assert!(!path.exists(), "nothing may be written on bad input");
    assert_refused(&run(&["org", "create", "--edition", "standard"]), "--name");
    for days in ["0", "-1", "ten", "36501"] {
        assert_refused(
            &run(&[
                "serve",
                &format!("--event-retention-days={days}"),
                "--database",
                &url,
            ]),
            "--event-retention-days",
        );
    }
    assert!(!path.exists(), "nothing may be written on bad input");
}

#[test]
fn operator_sets_up_an_org_on_a_fresh_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, url) = db_url(dir.path());
    let out = run(&[
        "org",
        "create",
        "--name",
        "Acme",
        "--edition",
        "standard",
        "--licences",
        "10",
        "--timezone",
        "Europe/Berlin",
        "--database",
        &url,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let org_id = out.stdout.trim().to_string();
    assert!(
        org_id.parse::<i64>().is_ok(),
        "only the id on stdout: {:?}",
        out.stdout
    );
    assert!(out.stderr.contains("52500"), "{}", out.stderr);

    let out = run_with(
        &[
            "user",
            "add",
            "--org",
            &org_id,
            "--email",
            "Boss@Acme.example",
            "--role",
            "super_admin",
            "--password-stdin",
            "--database",
            &url,
        ],
        Some("s3cret-password\n"),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_with(
        &[
            "user",
            "add",
            "--org",
            &org_id,
            "--email",
            "boss@acme.example",
            "--role",
            "admin",
            "--password-stdin",
            "--database",
            &url,
        ],
        Some("another-password\n"),
        &[],
    );
    assert_refused(&out, "exists already");
    let out = run_with(
        &[
            "user",
            "add",
            "--org",
            &org_id,
            "--email",
            "x@acme.example",
            "--role",
            "owner",
            "--password-stdin",
            "--database",
            &url,
        ],
        Some("another-password\n"),
        &[],
    );
    assert_refused(&out, "unknown role");
    let out = run_with(
        &[
            "user",
            "add",
            "--org",
            "999",
            "--email",
            "y@acme.example",
            "--role",
            "admin",
            "--password-stdin",
            "--database",
            &url,
        ],
        Some("another-password\n"),
        &[],
    );
    assert_refused(&out, "no org with id 999");

    let out = run(&["token", "create", "--org", &org_id, "--database", &url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = out.stdout.trim().to_string();
    assert!(token.starts_with("cm_") && token.len() == 67, "{token}");

    // Only hashes are stored: neither the token nor the password is anywhere in the database files.
    let mut stored = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("creditmeter.db-wal")) {
        stored.extend(wal);
    }
    let contains = |needle: &str| stored.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(&token));
    assert!(!contains(&token[3..]));
    assert!(!contains("s3cret-password"));

    let url_parsed = creditmeter::db::DatabaseUrl::parse(&url).unwrap();
    let mut conn = creditmeter::db::connect_one(&url_parsed).unwrap();
    let id: creditmeter::domain::types::OrgId = org_id.parse().unwrap();
    assert_eq!(
        creditmeter::store::users::org_for_token(&mut conn, &token, chrono::Utc::now())
            .unwrap()
            .map(|u| u.org_id),
        Some(id)
    );
    assert_eq!(
        creditmeter::store::users::org_for_token(&mut conn, "cm_nope", chrono::Utc::now())
            .unwrap()
            .map(|u| u.org_id),
        None
    );
    let user = creditmeter::store::users::find_by_email(&mut conn, "boss@acme.example")
        .unwrap()
        .unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(creditmeter::secrets::verify_password(
        "s3cret-password",
        &user.password_hash
    ));
}

#[test]
fn r11_org_update_applies_the_allowance_from_the_next_local_day() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = db_url(dir.path());
    let now = [("CREDITMETER_NOW", "2026-03-10T12:00:00Z")];
    let out = run_with(
        &[
            "org",
            "create",
            "--name",
            "Acme",
            "--edition",
            "standard",
            "--database",
            &url,
        ],
        None,
        &now,
    );
    assert!(
        out.stderr.contains("CREDITMETER_NOW"),
        "the fixed clock is announced"
    );
    let org_id = out.stdout.trim().to_string();
    let out = run_with(
        &[
            "org",
            "update",
            "--org",
            &org_id,
            "--licences",
            "10",
            "--database",
            &url,
        ],
        None,
        &now,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("2026-03-11"), "{}", out.stderr);
    assert_refused(
        &run(&["org", "update", "--org", &org_id, "--database", &url]),
        "nothing to change",
    );
    assert_refused(
        &run(&[
            "org",
            "update",
            "--org",
            &org_id,
            "--edition",
            "platinum",
            "--database",
            &url,
        ]),
        "unknown edition",
    );

    let mut conn =
        creditmeter::db::connect_one(&creditmeter::db::DatabaseUrl::parse(&url).unwrap()).unwrap();
    let org = creditmeter::store::orgs::find(&mut conn, org_id.parse().unwrap())
        .unwrap()
        .unwrap();
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let mut free =
        |d| creditmeter::store::orgs::free_allowance_on(&mut conn, &org, day(d)).unwrap();
    assert_eq!(
        free("2026-01-01"),
        50_000,
        "days before creation use the allowance at creation"
    );
    assert_eq!(free("2026-03-10"), 50_000);
    assert_eq!(free("2026-03-11"), 52_500);
}

#[test]
fn r6_plan_publish_only_for_days_no_org_has_reached() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = db_url(dir.path());
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "currency = \"USD\"\nblock = 1000\n[[tiers]]\nprice = \"0.10\"\n",
    )
    .unwrap();
    let plan = plan.display().to_string();
    let now = [("CREDITMETER_NOW", "2026-03-10T12:00:00Z")];
    let out = run_with(
        &[
            "plan",
            "publish",
            &plan,
            "--effective",
            "2026-03-11",
            "--database",
            &url,
        ],
        None,
        &now,
    );
    assert_refused(&out, "already begun");
    // Events up to 24 hours ahead are accepted: in UTC+14 that reaches 2026-03-12.
    let out = run_with(
        &[
            "plan",
            "publish",
            &plan,
            "--effective",
            "2026-03-12",
            "--database",
            &url,
        ],
        None,
        &now,
    );
    assert_refused(&out, "usage can already be reported");
    let out = run_with(
        &[
            "plan",
            "publish",
            &plan,
            "--effective",
            "2026-03-13",
            "--database",
            &url,
        ],
        None,
        &now,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run_with(
        &[
            "plan",
            "publish",
            &plan,
            "--effective",
            "2026-03-13",
            "--database",
            &url,
        ],
        None,
        &now,
    );
    assert_refused(&out, "already takes effect");
    let out = run_with(
        &[
            "plan",
            "publish",
            &plan,
            "--effective",
            "2026-02-30",
            "--database",
            &url,
        ],
        None,
        &now,
    );
    assert_refused(&out, "not a date");

    let mut conn =
        creditmeter::db::connect_one(&creditmeter::db::DatabaseUrl::parse(&url).unwrap()).unwrap();
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let (_, before) = creditmeter::store::plans::for_day(&mut conn, day("2026-03-12")).unwrap();
    let (_, after) = creditmeter::store::plans::for_day(&mut conn, day("2026-03-13")).unwrap();
    assert_eq!(
        before,
        creditmeter::domain::pricing::PricePlan::default_plan()
    );
    assert_eq!(after.quote(10_000).amount.to_string(), "1.00");
}

#[test]
fn import_reports_bad_rows_by_line_and_keeps_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = db_url(dir.path());
    let now = [("CREDITMETER_NOW", "2026-03-10T12:00:00Z")];
    let org_id = run_with(
        &[
            "org",
            "create",
            "--name",
            "Acme",
            "--edition",
            "standard",
            "--licences",
            "10",
            "--database",
            &url,
        ],
        None,
        &now,
    )
    .stdout
    .trim()
    .to_string();
    let csv = dir.path().join("usage.csv");
    std::fs::write(
        &csv,
        "id,timestamp,credits,operation,client\n\
         a,2026-03-09T10:00:00Z,50000,search,web\n\
         b,not-a-time,5,search,web\n\
         c,2026-03-09T11:00:00Z,-4,search,web\n\
         d,2026-03-09T12:00:00Z,2500,\"ocr, batch\",etl\n\
         a,2026-03-09T10:00:00Z,50000,search,web\n\
         e,2026-03-09T13:00:00Z,1,search,web\n\
         f,2026-03-12T13:00:00Z,1,search,web\n",
    )
    .unwrap();
    let file = csv.display().to_string();
    let out = run_with(
        &["import", &file, "--org", &org_id, "--database", &url],
        None,
        &now,
    );
    assert_ne!(out.code, 0, "bad rows make the exit code non-zero");
    assert!(
        out.stderr.contains("line 3: timestamp \"not-a-time\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("line 4: credits \"-4\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("line 7: refused LIMIT_EXCEEDED"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("line 8: refused FUTURE_TIMESTAMP"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("2 accepted, 1 duplicates, 2 refused, 2 bad rows"),
        "{}",
        out.stderr
    );

    let mut conn =
        creditmeter::db::connect_one(&creditmeter::db::DatabaseUrl::parse(&url).unwrap()).unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    let row = creditmeter::store::usage::day(&mut conn, org_id.parse().unwrap(), day)
        .unwrap()
        .unwrap();
    assert_eq!((row.credits, row.additional), (52_500, 0));

    // Importing the same file again counts nothing twice.
    let out = run_with(
        &["import", &file, "--org", &org_id, "--database", &url],
        None,
        &now,
    );
    assert!(
        out.stderr.contains("0 accepted, 3 duplicates"),
        "{}",
        out.stderr
    );
    assert_refused(
        &run(&[
            "import",
            "/no/such.csv",
            "--org",
            &org_id,
            "--database",
            &url,
        ]),
        "cannot read",
    );
    std::fs::write(&csv, "when,amount\n1,2\n").unwrap();
    assert_refused(
        &run(&["import", &file, "--org", &org_id, "--database", &url]),
        "id,timestamp,credits",
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    #[test]
    fn generated_credits_flags_never_panic(value in "\\PC{0,14}|-?[0-9]{1,22}") {
        let out = run(&["quote", "--credits", &value, "--json"]);
        match value.trim().parse::<i64>() {
            Ok(n) if (0..=creditmeter::domain::pricing::MAX_QUOTE_CREDITS).contains(&n) => {
                proptest::prop_assert_eq!(out.code, 0, "{:?}: {}", value, out.stderr);
                let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                proptest::prop_assert_eq!(json["credits"].as_i64(), Some(n));
            }
            _ => {
                proptest::prop_assert_ne!(out.code, 0);
                proptest::prop_assert_eq!(out.stderr.trim().lines().count(), 1, "{:?}", out.stderr);
            }
        }
    }
}
