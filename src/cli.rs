//! The `creditmeter` command line: argument definitions and the operator commands. Informational
//! output goes to stderr so that stdout stays scriptable; every error is one line.

use crate::domain::types::OrgId;
use anyhow::{Context, Result, anyhow, bail};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use std::io::BufRead;
use std::path::PathBuf;

use crate::clock::Clock;
use crate::db::{self, DatabaseUrl, DbConn};
use crate::domain::allowance::{self, Allowance, Edition};
use crate::domain::calendar;
use crate::domain::pricing::{MAX_QUOTE_CREDITS, PricePlan};
use crate::domain::types::DayRange;
use crate::secrets;
use crate::store::orgs::{self, NewOrg, OrgUpdate};
use crate::store::users::{self, Role};
use crate::store::{self, plans};

#[derive(Debug, Parser)]
#[command(
    name = "creditmeter",
    version,
    about = "Pay-as-you-go API credits: dashboard, gateway API and billing"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB
    #[arg(
        long = "database",
        env = "CREDITMETER_DATABASE",
        default_value = "sqlite://creditmeter.db",
        value_name = "URL"
    )]
    pub url: String,
}

impl DbArgs {
    pub fn parsed(&self) -> Result<DatabaseUrl> {
        Ok(DatabaseUrl::parse(&self.url)?)
    }

    pub fn open(&self) -> Result<DbConn> {
        Ok(db::connect_one(&self.parsed()?)?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the dashboard and the JSON API (migrates the database first)
    Serve(ServeArgs),
    /// Manage orgs
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage users of an org
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Price one day with N additional credits, with its slab breakdown
    Quote(QuoteArgs),
    /// Manage price plans
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Import usage from a CSV file (id,timestamp,credits[,operation,client,user])
    Import(ImportArgs),
    /// Monthly statements
    #[command(subcommand)]
    Statements(StatementsCommand),
    /// Copy a live SQLite database to PATH, consistent while the server writes (PostgreSQL: pg_dump)
    Backup(BackupArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy; it must not exist yet
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum StatementsCommand {
    /// Close every billing period that has ended and issue its statement (once)
    Close(StatementsCloseArgs),
}

#[derive(Debug, Args)]
pub struct StatementsCloseArgs {
    /// Close the periods that ended on or before this date (YYYY-MM-DD) instead of each org's today
    #[arg(long = "as-of", value_parser = parse_date)]
    pub as_of: Option<NaiveDate>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    #[arg(long = "org", value_name = "ID")]
    pub org_id: OrgId,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(
        long,
        env = "CREDITMETER_BIND",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub bind: String,
    /// Fill an empty database with a demo org, users, an API token and 90 days of usage
    #[arg(long, env = "CREDITMETER_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: bool,
    /// Mark cookies Secure (set this when users reach the server over HTTPS)
    #[arg(long = "secure-cookies", env = "CREDITMETER_SECURE_COOKIES", value_parser = clap::builder::BoolishValueParser::new())]
    pub secure_cookies: bool,
    /// HTTP worker threads (default: one per core)
    #[arg(
        long,
        env = "CREDITMETER_WORKERS",
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub workers: Option<u16>,
    /// Client connections the server holds open at once; past it new ones wait in the listen
    /// queue (also bounded by the open-file limit, `ulimit -n`)
    #[arg(
        long = "max-connections",
        env = "CREDITMETER_MAX_CONNECTIONS",
        default_value_t = crate::startup::DEFAULT_MAX_CONNECTIONS,
        value_name = "N",
        value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=1_000_000), |n| n as usize)
    )]
    pub max_connections: usize,
    /// Deliver webhooks to loopback, private and link-local addresses too (on-premise receivers,
    /// tests); by default only public addresses get deliveries
    #[arg(long = "webhook-allow-private", env = "CREDITMETER_WEBHOOK_ALLOW_PRIVATE", value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_allow_private: bool,
    /// Seconds to wait after a webhook's first failed attempt (each later wait is four times
    /// longer, at most 6 hours, less up to half at random)
    #[arg(
        long = "webhook-retry-base",
        env = "CREDITMETER_WEBHOOK_RETRY_BASE",
        default_value_t = 30,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u32).range(1..=3600)
    )]
    pub webhook_retry_base: u32,
    /// Attempts before a webhook delivery is given up as failed
    #[arg(
        long = "webhook-attempts",
        env = "CREDITMETER_WEBHOOK_ATTEMPTS",
        default_value_t = 8,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=20)
    )]
    pub webhook_attempts: u32,
    /// Seconds one webhook attempt may take, connecting and answering included
    #[arg(
        long = "webhook-timeout",
        env = "CREDITMETER_WEBHOOK_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u32).range(1..=60)
    )]
    pub webhook_timeout: u32,
    /// Reverse proxies (IP addresses, comma-separated) whose X-Forwarded-For names the client;
    /// from any other peer the header is ignored
    #[arg(
        long = "trusted-proxies",
        env = "CREDITMETER_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "IP,IP"
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Days raw usage events are kept for audit before they are pruned (rollups are kept for ever)
    #[arg(
        long = "event-retention-days",
        env = "CREDITMETER_EVENT_RETENTION_DAYS",
        default_value_t = 90,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(1..=36_500)
    )]
    pub event_retention_days: u32,
    /// Give every usage write its own transaction instead of batching concurrent ones (benchmarks)
    #[arg(long = "no-group-commit", env = "CREDITMETER_NO_GROUP_COMMIT", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_group_commit: bool,
    /// Run with CREDITMETER_NOW on a database the real clock has run on (it closes periods and
    /// writes usage at that time)
    #[arg(long = "allow-fixed-clock", env = "CREDITMETER_ALLOW_FIXED_CLOCK", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_fixed_clock: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an org; prints only its id
    Create(OrgCreateArgs),
    /// List the orgs: id, name, edition, time zone, additional limit
    List(OrgListArgs),
    /// Change an org's name, edition, licences, add-on credits, time zone or webhook
    Update(OrgUpdateArgs),
}

#[derive(Debug, Args)]
pub struct OrgListArgs {
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct OrgCreateArgs {
    #[arg(long)]
    pub name: String,
    /// free, standard, professional, enterprise or ultimate
    #[arg(long)]
    pub edition: String,
    #[arg(long, default_value_t = 0, value_parser = parse_count, allow_negative_numbers = true)]
    pub licences: i64,
    #[arg(long = "add-on-credits", default_value_t = 0, value_parser = parse_count, allow_negative_numbers = true)]
    pub add_on_credits: i64,
    /// IANA time zone, such as Europe/Berlin
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct OrgUpdateArgs {
    #[arg(long = "org", value_name = "ID")]
    pub org_id: OrgId,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub edition: Option<String>,
    #[arg(long, value_parser = parse_count, allow_negative_numbers = true)]
    pub licences: Option<i64>,
    #[arg(long = "add-on-credits", value_parser = parse_count, allow_negative_numbers = true)]
    pub add_on_credits: Option<i64>,
    #[arg(long)]
    pub timezone: Option<String>,
    /// URL that receives alert events (http or https)
    #[arg(long = "webhook-url", conflicts_with = "no_webhook")]
    pub webhook_url: Option<String>,
    /// Remove the webhook
    #[arg(long = "no-webhook")]
    pub no_webhook: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is the first line of standard input
    Add(UserAddArgs),
    /// List an org's users: id, email, role, state
    List(OrgListingArgs),
    /// Disable a user: they cannot sign in, and their sessions end within a second
    Disable(UserPickArgs),
    /// Remove a user and their sessions
    Remove(UserPickArgs),
    /// Set a user's password from the first line of standard input; their sessions end
    SetPassword(UserSetPasswordArgs),
}

/// The arguments of a command that lists something of one org (users, tokens).
#[derive(Debug, Args)]
pub struct OrgListingArgs {
    #[arg(long = "org", value_name = "ID")]
    pub org_id: OrgId,
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct UserPickArgs {
    #[arg(long = "org", value_name = "ID")]
    pub org_id: OrgId,
    #[arg(long)]
    pub email: String,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct UserSetPasswordArgs {
    #[arg(long = "org", value_name = "ID")]
    pub org_id: OrgId,
    #[arg(long)]
    pub email: String,
    /// Read the password from the first line of standard input
    #[arg(long = "password-stdin", required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    #[arg(long = "org", value_name = "ID")]
    pub org_id: OrgId,
    #[arg(long)]
    pub email: String,
    /// super_admin, admin or user
    #[arg(long)]
    pub role: String,
    /// Read the password from the first line of standard input
    #[arg(long = "password-stdin", required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for an org; prints it once, only its hash is stored
    Create(TokenCreateArgs),
    /// List an org's tokens: id, name, created, last used (never the tokens themselves)
    List(OrgListingArgs),
    /// Revoke a token by its id (from `token list`); every server refuses it within a second
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    #[arg(long = "org", value_name = "ID")]
    pub org_id: OrgId,
    /// A name to tell the token apart in `token list` (for example the gateway it is for)
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    #[arg(long = "org", value_name = "ID")]
    pub org_id: OrgId,
    /// The token's id, as `token list` shows it
    #[arg(long = "id", value_name = "TOKEN_ID")]
    pub id: i64,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// Additional credits consumed in one day
    #[arg(long, value_parser = parse_quote_credits, allow_negative_numbers = true)]
    pub credits: i64,
    /// A TOML plan file (default: the built-in plan)
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Publish a TOML plan file effective from a date no org has reached yet
    Publish(PlanPublishArgs),
    /// Check a TOML plan file and print its tiers
    Check(PlanCheckArgs),
}

#[derive(Debug, Args)]
pub struct PlanPublishArgs {
    pub file: PathBuf,
    /// First day (YYYY-MM-DD) priced with this plan
    #[arg(long, value_parser = parse_date)]
    pub effective: NaiveDate,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct PlanCheckArgs {
    pub file: PathBuf,
}

fn parse_count(value: &str) -> Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err("must not be negative".into()),
        Ok(n) if n > 1_000_000_000 => Err("must be at most 1,000,000,000".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("must be a whole number".into()),
    }
}

fn parse_quote_credits(value: &str) -> Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err("must not be negative".into()),
        Ok(n) if n > MAX_QUOTE_CREDITS => Err(format!("must be at most {MAX_QUOTE_CREDITS}")),
        Ok(n) => Ok(n),
        Err(_) => Err("must be a whole number of credits, such as 80000".into()),
    }
}

fn parse_date(value: &str) -> Result<NaiveDate, String> {
    DayRange::parse_date(value).map_err(|e| e.to_string())
}

pub fn parse_edition(value: &str) -> Result<Edition> {
    Ok(value.parse::<Edition>()?)
}

/// Run a parsed command.
pub fn run(cli: Cli, clock: Clock) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args, clock),
        Command::Org(OrgCommand::Create(args)) => org_create(args, clock),
        Command::Org(OrgCommand::Update(args)) => org_update(args, clock),
        Command::User(UserCommand::Add(args)) => user_add(args, clock),
        Command::Org(OrgCommand::List(args)) => org_list(args),
        Command::User(UserCommand::List(args)) => user_list(args),
        Command::User(UserCommand::Disable(args)) => user_disable(args, clock),
        Command::User(UserCommand::Remove(args)) => user_remove(args),
        Command::User(UserCommand::SetPassword(args)) => user_set_password(args),
        Command::Token(TokenCommand::Create(args)) => token_create(args, clock),
        Command::Token(TokenCommand::List(args)) => token_list(args),
        Command::Token(TokenCommand::Revoke(args)) => token_revoke(args),
        Command::Quote(args) => quote(args),
        Command::Plan(PlanCommand::Publish(args)) => plan_publish(args, clock),
        Command::Plan(PlanCommand::Check(args)) => plan_check(args),
        Command::Import(args) => import(args, clock),
        Command::Statements(StatementsCommand::Close(args)) => statements_close(args, clock),
        Command::Backup(args) => backup(args),
    }
}

/// `backup PATH`: SQLite's `VACUUM INTO`, one read transaction, so the copy is the database as of
/// one instant however the server writes meanwhile; it is written whole, compacted, and checked.
fn backup(args: BackupArgs) -> Result<()> {
    if let DatabaseUrl::Postgres(_) = args.db.parsed()? {
        bail!(
            "backup copies SQLite databases; for PostgreSQL use pg_dump (for example: pg_dump --format=custom --file=creditmeter.dump \"$DATABASE_URL\")"
        );
    }
    if args.path.exists() {
        bail!("{} exists already: give a new path", args.path.display());
    }
    if args.path.to_string_lossy().starts_with("file:") {
        bail!("give a plain file path, not a file: URI");
    }
    let target = args
        .path
        .to_str()
        .ok_or_else(|| anyhow!("the path {} is not UTF-8", args.path.display()))?;
    // Neither the live database nor the copy is migrated: a backup changes nothing.
    let mut conn = db::connect_unmigrated(&args.db.parsed()?)?;
    store::backup_into(&mut conn, target)
        .with_context(|| format!("cannot write the backup to {target}"))?;
    let copy = DatabaseUrl::parse(&format!("sqlite://{target}"))?;
    let mut check = db::connect_unmigrated(&copy)?;
    store::integrity_check(&mut check).context("the backup does not read back whole")?;
    println!("{target}");
    Ok(())
}

fn org_create(args: OrgCreateArgs, clock: Clock) -> Result<()> {
    let name = crate::domain::types::check_org_name(&args.name).map_err(|e| anyhow!(e))?;
    let edition = parse_edition(&args.edition)?;
    let zone = calendar::parse_zone(&args.timezone)?;
    let mut conn = args.db.open()?;
    let org = NewOrg {
        name,
        zone,
        allowance: Allowance {
            edition,
            licences: args.licences,
            add_on_credits: args.add_on_credits,
        },
    };
    let id = orgs::create(&mut conn, &org, clock.now()).context("cannot create the org")?;
    eprintln!(
        "created org {id} ({}, {} edition, {} free credits a day, zone {})",
        org.name,
        edition,
        org.allowance.daily_free_credits(),
        zone.name()
    );
    println!("{id}");
    Ok(())
}

fn require_org(conn: &mut DbConn, org_id: OrgId) -> Result<orgs::OrgRow> {
    orgs::find(conn, org_id)?.ok_or_else(|| anyhow!("no org with id {org_id}"))
}

fn org_update(args: OrgUpdateArgs, clock: Clock) -> Result<()> {
    let edition = args.edition.as_deref().map(parse_edition).transpose()?;
    let zone = args
        .timezone
        .as_deref()
        .map(calendar::parse_zone)
        .transpose()?;
    let name = args
        .name
        .as_deref()
        .map(crate::domain::types::check_org_name)
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let webhook_url = match (&args.webhook_url, args.no_webhook) {
        (_, true) => Some(None),
        (Some(url), false) => {
            let url = url.trim();
            crate::webhooks::check_url(url).map_err(|e| anyhow!("--webhook-url: {e}"))?;
            Some(Some(url.to_string()))
        }
        (None, false) => None,
    };
    let change = OrgUpdate {
        name,
        edition,
        licences: args.licences,
        add_on_credits: args.add_on_credits,
        zone,
    };
    if change.name.is_none()
        && change.edition.is_none()
        && change.licences.is_none()
        && change.add_on_credits.is_none()
        && change.zone.is_none()
        && webhook_url.is_none()
    {
        bail!(
            "nothing to change: give at least one of --name, --edition, --licences, --add-on-credits, --timezone, --webhook-url, --no-webhook"
        );
    }
    let mut conn = args.db.open()?;
    let org = require_org(&mut conn, args.org_id)?;
    orgs::update(&mut conn, org.id, &change, clock.now()).context("cannot update the org")?;
    if let Some(url) = &webhook_url {
        crate::store::alerts::set_webhook_url(
            &mut conn,
            org.id,
            url.as_deref(),
            "operator (CLI)",
            clock.now(),
        )
        .context("cannot set the webhook URL")?;
    }
    if matches!(webhook_url, Some(Some(_)))
        && !crate::store::alerts::settings(&mut conn, org.id)?.has_secret
    {
        let secret = crate::store::alerts::new_webhook_secret(
            &mut conn,
            org.id,
            "operator (CLI)",
            clock.now(),
        )
        .context("cannot make the webhook's signing secret")?;
        println!("{secret}");
        eprintln!(
            "the webhook's signing secret is on stdout; it is shown this once (rotate it on the Alerts page)"
        );
    }
    if change.edition.is_some() || change.licences.is_some() || change.add_on_credits.is_some() {
        let zone = change.zone.unwrap_or(org.zone());
        let effective = allowance::change_effective_from(clock.now(), zone);
        eprintln!(
            "updated org {}; the new allowance applies from {effective}",
            org.id
        );
    } else {
        eprintln!("updated org {}", org.id);
    }
    Ok(())
}

fn read_password_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password).to_string();
    if password.chars().count() < 8 {
        bail!("the password (first line of standard input) must be at least 8 characters");
    }
    if password.len() > 1024 {
        bail!("the password must be at most 1024 bytes");
    }
    Ok(password)
}

pub fn valid_email(email: &str) -> bool {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
                && email.len() <= 254
                && !domain.contains('@')
        }
        None => false,
    }
}

fn user_add(args: UserAddArgs, clock: Clock) -> Result<()> {
    let role: Role = args.role.parse()?;
    if !valid_email(&args.email) {
        bail!("--email {:?} is not an email address", args.email);
    }
    let password = read_password_line()?;
    let mut conn = args.db.open()?;
    require_org(&mut conn, args.org_id)?;
    if users::find_by_email(&mut conn, &args.email)?.is_some() {
        bail!(
            "a user with email {} exists already",
            users::normalize_email(&args.email)
        );
    }
    let hash =
        secrets::hash_password(&password).map_err(|e| anyhow!("cannot hash the password: {e}"))?;
    let id = users::add(
        &mut conn,
        args.org_id,
        &args.email,
        role,
        &hash,
        clock.now(),
    )
    .context("cannot add the user")?;
    eprintln!(
        "added user {id} ({}) as {role} of org {}",
        users::normalize_email(&args.email),
        args.org_id
    );
    Ok(())
}

fn org_list(args: OrgListArgs) -> Result<()> {
    let mut conn = args.db.open()?;
    for org in orgs::list(&mut conn)? {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "id": org.id,
                    "name": org.name,
                    "edition": org.edition.as_str(),
                    "timezone": org.zone().name(),
                    "additional_limit": org.additional_limit,
                })
            );
        } else {
            println!(
                "{}\t{}\t{}\t{}\tlimit {}",
                org.id,
                org.name,
                org.edition.as_str(),
                org.zone().name(),
                org.additional_limit
            );
        }
    }
    Ok(())
}

/// A user of the org named by `--org` and `--email`, or a one-line error.
fn pick_user(conn: &mut DbConn, org_id: OrgId, email: &str) -> Result<users::UserRow> {
    require_org(conn, org_id)?;
    users::find_in_org(conn, org_id, email)?
        .ok_or_else(|| anyhow!("org {org_id} has no user {}", users::normalize_email(email)))
}

fn user_list(args: OrgListingArgs) -> Result<()> {
    let mut conn = args.db.open()?;
    require_org(&mut conn, args.org_id)?;
    for user in users::users_of(&mut conn, args.org_id)? {
        let state = if user.is_disabled() {
            "disabled"
        } else {
            "active"
        };
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "id": user.id,
                    "email": user.email,
                    "role": user.role.as_str(),
                    "state": state,
                })
            );
        } else {
            println!("{}\t{}\t{}\t{state}", user.id, user.email, user.role);
        }
    }
    Ok(())
}

fn user_disable(args: UserPickArgs, clock: Clock) -> Result<()> {
    let mut conn = args.db.open()?;
    let user = pick_user(&mut conn, args.org_id, &args.email)?;
    users::disable(&mut conn, user.id, clock.now())?;
    eprintln!(
        "disabled {}; their sessions end within a second on every server",
        user.email
    );
    Ok(())
}

fn user_remove(args: UserPickArgs) -> Result<()> {
    let mut conn = args.db.open()?;
    let user = pick_user(&mut conn, args.org_id, &args.email)?;
    users::remove(&mut conn, user.id)?;
    eprintln!("removed {}", user.email);
    Ok(())
}

fn user_set_password(args: UserSetPasswordArgs) -> Result<()> {
    let password = read_password_line()?;
    let mut conn = args.db.open()?;
    let user = pick_user(&mut conn, args.org_id, &args.email)?;
    let hash =
        secrets::hash_password(&password).map_err(|e| anyhow!("cannot hash the password: {e}"))?;
    users::set_password(&mut conn, &user.email, &hash)?;
    eprintln!("set the password of {}; their sessions ended", user.email);
    Ok(())
}

fn token_create(args: TokenCreateArgs, clock: Clock) -> Result<()> {
    let mut conn = args.db.open()?;
    require_org(&mut conn, args.org_id)?;
    let name = args
        .name
        .as_deref()
        .map(|n| {
            crate::domain::types::check_org_name(n)
                .map_err(|e| anyhow!(e.replace("--name", "--name of a token")))
        })
        .transpose()?;
    let token = users::create_named_token(&mut conn, args.org_id, name.as_deref(), clock.now())?;
    eprintln!(
        "created an API token for org {}; it is shown once, only its hash is stored",
        args.org_id
    );
    println!("{token}");
    Ok(())
}

fn token_list(args: OrgListingArgs) -> Result<()> {
    let mut conn = args.db.open()?;
    require_org(&mut conn, args.org_id)?;
    let tokens = users::tokens_of(&mut conn, args.org_id)?;
    let time = |t: Option<chrono::NaiveDateTime>| {
        t.map_or_else(
            || "never".to_string(),
            |t| format!("{}Z", t.format("%Y-%m-%dT%H:%M:%S")),
        )
    };
    for t in &tokens {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "id": t.id,
                    "org": t.org_id,
                    "name": t.name,
                    "created": time(Some(t.created_at)),
                    "last_used": t.last_used_at.map(|_| time(t.last_used_at)),
                })
            );
        } else {
            println!(
                "{}\t{}\tcreated {}\tlast used {}",
                t.id,
                t.name.as_deref().unwrap_or("-"),
                time(Some(t.created_at)),
                time(t.last_used_at)
            );
        }
    }
    if tokens.is_empty() {
        eprintln!("org {} has no API tokens", args.org_id);
    }
    Ok(())
}

fn token_revoke(args: TokenRevokeArgs) -> Result<()> {
    let mut conn = args.db.open()?;
    require_org(&mut conn, args.org_id)?;
    if !users::revoke_token(&mut conn, args.org_id, args.id)? {
        bail!("org {} has no token with id {}", args.org_id, args.id);
    }
    eprintln!(
        "revoked token {} of org {}; every server refuses it within a second",
        args.id, args.org_id
    );
    Ok(())
}

fn read_plan(path: &PathBuf) -> Result<PricePlan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read plan file {}", path.display()))?;
    PricePlan::from_toml(&text).with_context(|| format!("plan file {}", path.display()))
}

fn quote(args: QuoteArgs) -> Result<()> {
    let plan = match &args.plan {
        Some(path) => read_plan(path)?,
        None => PricePlan::default_plan(),
    };
    let quote = plan.quote(args.credits);
    if args.json {
        println!("{}", quote.to_json());
        return Ok(());
    }
    use crate::domain::money::{format_exact, group_thousands};
    println!(
        "{} additional credits in one day, priced per {} credits:",
        group_thousands(quote.credits),
        group_thousands(plan.block())
    );
    for line in &quote.lines {
        let flat = if line.flat.is_zero() {
            String::new()
        } else {
            format!(" + flat {}", format_exact(line.flat, plan.currency()))
        };
        println!(
            "  tier {}: credits {:>11} to {:>11}  {:>11} x {} {}{}  = {}",
            line.tier,
            group_thousands(line.from),
            group_thousands(line.to),
            group_thousands(line.credits),
            plan.currency(),
            line.price.normalize(),
            flat,
            format_exact(line.amount, plan.currency())
        );
    }
    println!("exact: {} {}", plan.currency(), quote.exact.normalize());
    println!("amount: {} {}", plan.currency(), quote.amount);
    Ok(())
}

fn plan_publish(args: PlanPublishArgs, clock: Clock) -> Result<()> {
    let plan = read_plan(&args.file)?;
    let mut conn = args.db.open()?;
    let id = plans::publish(&mut conn, &plan, args.effective, clock.now())?;
    eprintln!(
        "published plan {id} ({}, {} tiers) effective from {}",
        plan.currency(),
        plan.tiers().len(),
        args.effective
    );
    Ok(())
}

fn plan_check(args: PlanCheckArgs) -> Result<()> {
    let plan = read_plan(&args.file)?;
    eprintln!(
        "plan file {} is valid: {}, {} tiers, per {} credits",
        args.file.display(),
        plan.currency(),
        plan.tiers().len(),
        plan.block()
    );
    Ok(())
}

/// A fixed clock (CREDITMETER_NOW) on a database the real clock has run on would close periods and
/// write usage at a made-up time; refuse unless the operator says so. The real clock marks the
/// database.
fn check_clock(conn: &mut DbConn, clock: Clock, allowed: bool) -> Result<()> {
    match clock {
        Clock::Real => Ok(()),
        Clock::Fixed(at) => match store::real_clock_mark(conn)? {
            Some(real) if !allowed => bail!(
                "CREDITMETER_NOW={} is set, but the real clock ran the server on this database (last {}): a fixed clock would close periods and write usage at that time; unset CREDITMETER_NOW, or pass --allow-fixed-clock",
                at.to_rfc3339(),
                real.to_rfc3339()
            ),
            _ => Ok(()),
        },
    }
}

/// The commands other than `serve` take the permission from the environment only.
fn fixed_clock_allowed() -> bool {
    std::env::var("CREDITMETER_ALLOW_FIXED_CLOCK").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on" | "y"
        )
    })
}

fn serve(args: ServeArgs, clock: Clock) -> Result<()> {
    use crate::startup::{Application, Settings};
    crate::telemetry::init();
    let database = args.db.parsed()?;
    let mut conn = db::connect_one(&database)?;
    check_clock(&mut conn, clock, args.allow_fixed_clock)?;
    if clock == Clock::Real {
        store::mark_real_clock(&mut conn, clock.now()).context("cannot mark the database")?;
    }
    drop(conn);
    let settings = Settings {
        bind: args.bind.clone(),
        database: database.clone(),
        clock,
        secure_cookies: args.secure_cookies,
        workers: args.workers.map(usize::from),
        group_commit: !args.no_group_commit,
        close_every: Some(std::time::Duration::from_secs(60)),
        event_retention_days: Some(args.event_retention_days),
        trusted_proxies: args.trusted_proxies.clone(),
        max_connections: args.max_connections,
        webhooks: Some(crate::webhooks::WebhookConfig {
            allow_private: args.webhook_allow_private,
            retry_base: std::time::Duration::from_secs(args.webhook_retry_base.into()),
            max_attempts: args.webhook_attempts,
            timeout: std::time::Duration::from_secs(args.webhook_timeout.into()),
        }),
    };
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        let url = {
            let host = args.bind.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            let host = if host == "0.0.0.0" || host == "[::]" { "127.0.0.1" } else { host };
            format!("http://{host}:{}/login", app.port())
        };
        if args.demo {
            let pool = app.pool();
            let demo = actix_web::web::block(move || -> Result<crate::demo::Demo> {
                let mut conn = pool.get().context("cannot open the database")?;
                crate::demo::load(&mut conn, clock.now())
            })
            .await
            .map_err(|e| anyhow!("demo data: {e}"))??;
            println!("creditmeter demo: {url}");
            for user in &demo.users {
                println!("email: {}  password: {}  role: {}", user.email, user.password, user.role);
            }
            match &demo.token {
                Some(token) => println!("API token of org {}: {token}", demo.org_id),
                None => println!("(demo data existed already: new passwords were set; API tokens are shown only when created)"),
            }
            if demo.events > 0 {
                eprintln!("loaded {} demo usage events over 90 days", demo.events);
            }
        } else {
            println!("creditmeter: {url}");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        app.run().await.context("server stopped with an error")
    })
}

/// Rows per transaction during an import.
const IMPORT_CHUNK: usize = 10_000;

fn import(args: ImportArgs, clock: Clock) -> Result<()> {
    use crate::import;
    use std::io::IsTerminal;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let (rows, bad) = import::parse(&text, args.org_id)
        .map_err(|b| anyhow!("{} line {}: {}", args.file.display(), b.line, b.reason))?;
    let mut conn = args.db.open()?;
    require_org(&mut conn, args.org_id)?;
    check_clock(&mut conn, clock, fixed_clock_allowed())?;
    for b in &bad {
        eprintln!("line {}: {}", b.line, b.reason);
    }
    // The whole file is one report (R12).
    let times: Vec<_> = rows.iter().map(|r| r.request.occurred_at).collect();
    let rows: Vec<import::Row> = crate::domain::admission::admission_order(&times)
        .into_iter()
        .map(|i| rows[i].clone())
        .collect();
    let total = rows.len();
    let progress = std::io::stderr().is_terminal();
    let mut summary = import::Summary::default();
    for (n, chunk) in rows.chunks(IMPORT_CHUNK).enumerate() {
        let requests: Vec<_> = chunk.iter().map(|r| r.request.clone()).collect();
        let outcomes = crate::ledger::apply_batch(&mut conn, clock.now(), &requests)
            .context("cannot record usage")?;
        for (row, outcome) in chunk.iter().zip(&outcomes) {
            summary.add(row.line, outcome);
        }
        if progress {
            let done = (n * IMPORT_CHUNK + chunk.len()).min(total);
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            eprint!(
                "\r[{}{}] {done}/{total} rows",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
        }
    }
    if progress {
        eprintln!();
    }
    // Rows are applied in time order; they are reported in the file's order.
    summary.refused.sort_unstable();
    for (line, reason) in summary.refused.iter().take(50) {
        eprintln!("line {line}: refused {reason}");
    }
    if summary.refused.len() > 50 {
        eprintln!("... and {} more refused rows", summary.refused.len() - 50);
    }
    eprintln!(
        "imported {}: {} accepted, {} duplicates, {} refused, {} bad rows",
        args.file.display(),
        summary.accepted,
        summary.duplicates,
        summary.refused.len(),
        bad.len()
    );
    // Whatever the file holds that is not recorded makes the exit status non-zero.
    if !bad.is_empty() || !summary.refused.is_empty() {
        bail!(
            "{} bad rows were skipped and {} rows refused (listed above); the other rows were \
             imported",
            bad.len(),
            summary.refused.len()
        );
    }
    Ok(())
}

fn statements_close(args: StatementsCloseArgs, clock: Clock) -> Result<()> {
    let mut conn = args.db.open()?;
    check_clock(&mut conn, clock, fixed_clock_allowed())?;
    let issued = crate::billing::close_due(&mut conn, clock.now(), args.as_of)
        .context("cannot close billing periods")?;
    for number in &issued {
        println!("{number}");
    }
    eprintln!("issued {} statements", issued.len());
    Ok(())
}
