//! `pushrelay campaigns create|list|show|preview|pause|resume|cancel`:
//! marketing's campaigns from the command line, straight on the database
//! through `store::campaigns` (the same checks and messages as the HTTP
//! API). `show` draws a live progress bar on a terminal; piped, it prints
//! once, so scripts and tests read plain text.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::config::Settings;
use crate::model::Priority;
use crate::store::campaigns::{
    self, Campaign, Content, Counts, NewCampaign, Progress, Reach, Schedule, Segment,
};
use crate::templates::Templates;
use crate::worker::campaigns::context;

/// The progress counts in the order a campaign moves through them.
const ORDER: &[&str] = &[
    "targeted",
    "no_consent",
    "scheduled",
    "queued",
    "sent",
    "delivered",
    "failed",
    "token_dead",
    "expired",
    "cancelled",
    "dropped",
    "opened",
];
/// The counts whose devices are settled: the progress bar's position.
const SETTLED: &[&str] = &[
    "delivered",
    "failed",
    "token_dead",
    "expired",
    "cancelled",
    "dropped",
];
/// How often `show --watch` reads the progress again.
const REFRESH: Duration = Duration::from_secs(1);
/// A user list CSV is streamed to the database in pieces of this size.
const UPLOAD_CHUNK: usize = 256 * 1024;

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Create a campaign; prints its id (first line) and its reach.
    Create(CreateArgs),
    /// List campaigns, newest first.
    List {
        /// Only this app's campaigns.
        #[arg(long)]
        app: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show a campaign and its progress; on a terminal (or with --watch) a
    /// live progress bar until it ends or Ctrl-C.
    Show {
        id: Uuid,
        /// Keep refreshing even when stdout is not a terminal.
        #[arg(long, conflicts_with = "json")]
        watch: bool,
        #[arg(long)]
        json: bool,
    },
    /// Count the users and devices an audience reaches now, by platform.
    Preview(PreviewArgs),
    /// Pause a campaign: nothing more is queued until it is resumed.
    Pause { id: Uuid },
    /// Resume a paused campaign where it stopped.
    Resume { id: Uuid },
    /// Cancel a campaign: everything not yet sent is dropped.
    Cancel { id: Uuid },
}

/// Who gets a campaign, and when (shared by `create` and `preview`).
#[derive(Debug, Args)]
pub struct AudienceArgs {
    /// The app, as named in config.toml.
    #[arg(long)]
    pub app: String,
    /// The segment as JSON, e.g. '{"platforms": ["ios"], "locales": ["de"]}'
    /// or '{"all": true}' for every device of the app.
    #[arg(long, conflicts_with = "segment_file")]
    pub segment: Option<String>,
    /// The segment as a JSON file.
    #[arg(long)]
    pub segment_file: Option<PathBuf>,
    /// A CSV file of user ids (one per line, optional `user_id` header),
    /// uploaded as a new user list; with a segment, both must match.
    #[arg(long, conflicts_with = "user_list")]
    pub users: Option<PathBuf>,
    /// A user list uploaded before (its id).
    #[arg(long)]
    pub user_list: Option<Uuid>,
    /// Only devices consenting to this category (e.g. marketing); the
    /// others are skipped and counted.
    #[arg(long)]
    pub category: Option<String>,
    /// Send at this time (RFC 3339, e.g. 2026-12-01T09:00:00Z); default now.
    #[arg(long, conflicts_with_all = ["local_time", "date"])]
    pub at: Option<DateTime<Utc>>,
    /// Send at this wall-clock time (HH:MM) in each device's timezone, on --date.
    #[arg(long, requires = "date")]
    pub local_time: Option<String>,
    /// The date of --local-time (YYYY-MM-DD).
    #[arg(long, requires = "local_time")]
    pub date: Option<NaiveDate>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub audience: AudienceArgs,
    /// The campaign's name (shown in listings).
    #[arg(long)]
    pub name: String,
    /// Template name (templates/<name>/<locale>.toml).
    #[arg(long, required_unless_present = "body")]
    pub template: Option<String>,
    /// Inline title (instead of a template).
    #[arg(long, conflicts_with = "template")]
    pub title: Option<String>,
    /// Inline body (instead of a template).
    #[arg(long, conflicts_with = "template")]
    pub body: Option<String>,
    /// Template variables, or the custom payload of an inline message: a JSON object.
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// Content options as a JSON object (README, "Content options").
    #[arg(long, default_value = "{}")]
    pub options: String,
    /// Devices that were offline get only the latest message with this key.
    #[arg(long)]
    pub collapse_key: Option<String>,
    /// bulk (marketing, the default) or urgent.
    #[arg(long, default_value = "bulk", value_parser = parse_priority)]
    pub priority: Priority,
    /// Seconds after its due time during which a device's message is still
    /// worth sending (default one day).
    #[arg(long)]
    pub ttl: Option<i64>,
    /// At most this many devices a minute (default: no throttle).
    #[arg(long)]
    pub throttle: Option<i64>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub audience: AudienceArgs,
    #[arg(long)]
    pub json: bool,
}

fn parse_priority(s: &str) -> Result<Priority, String> {
    s.parse()
        .map_err(|e: crate::model::UnknownValue| e.to_string())
}

pub(super) async fn campaigns_command(
    settings: &Settings,
    pool: &sqlx::PgPool,
    cmd: CampaignsCommand,
) -> anyhow::Result<()> {
    match cmd {
        CampaignsCommand::Create(args) => create(settings, pool, args).await,
        CampaignsCommand::Preview(args) => preview(settings, pool, args).await,
        CampaignsCommand::List { app, limit, json } => {
            if let Some(app) = &app {
                super::send::known_app(settings, app)?;
            }
            anyhow::ensure!(limit >= 1, "--limit must be at least 1");
            let list = campaigns::list(pool, app.as_deref(), None, None, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", render_list(&list));
            }
            Ok(())
        }
        CampaignsCommand::Show { id, watch, json } => show(pool, id, watch, json).await,
        CampaignsCommand::Pause { id } => {
            print_state(&campaigns::pause(pool, id, None).await?);
            Ok(())
        }
        CampaignsCommand::Resume { id } => {
            print_state(&campaigns::resume(pool, id, None).await?);
            Ok(())
        }
        CampaignsCommand::Cancel { id } => {
            print_state(&campaigns::cancel(pool, id, None).await?);
            Ok(())
        }
    }
}

fn print_state(c: &Campaign) {
    println!("campaign {} ({:?}) is {}", c.id, c.name, c.state);
}

fn apps(settings: &Settings) -> Vec<String> {
    settings.apps.keys().cloned().collect()
}

/// The segment from `--segment` or `--segment-file` (none: no filter).
fn segment(args: &AudienceArgs) -> anyhow::Result<Segment> {
    let (text, source) = match (&args.segment, &args.segment_file) {
        (Some(text), _) => (text.clone(), "--segment".to_owned()),
        (None, Some(path)) => (
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        (None, None) => return Ok(Segment::default()),
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{source} is not a segment: {e}"))
}

/// The store's messages speak the API's JSON; say which flag that is.
fn flag_hint(e: campaigns::CampaignError) -> anyhow::Error {
    match e {
        campaigns::CampaignError::EmptyAudience => {
            anyhow::anyhow!("{e} (here: --segment '{{\"all\": true}}')")
        }
        campaigns::CampaignError::UnknownUserList(_) => {
            anyhow::anyhow!("{e} (here: --users FILE.csv uploads one)")
        }
        e => e.into(),
    }
}

fn schedule(args: &AudienceArgs) -> Schedule {
    Schedule {
        at: args.at,
        local_time: args.local_time.clone(),
        date: args.date,
    }
}

/// The user list named by `--user-list`, or `--users` uploaded as a new one.
async fn user_list(pool: &sqlx::PgPool, args: &AudienceArgs) -> anyhow::Result<Option<Uuid>> {
    let Some(path) = &args.users else {
        return Ok(args.user_list);
    };
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "users.csv".into());
    let list = campaigns::upload_user_list(pool, &args.app, &name, Box::pin(chunks(file))).await?;
    eprintln!(
        "uploaded user list {} ({} users from {}); reuse it with --user-list {}",
        list.id,
        list.users,
        path.display(),
        list.id
    );
    Ok(Some(list.id))
}

/// The file as a stream of chunks: a list of millions of ids never sits in
/// memory whole.
fn chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = bytes::BytesMut::with_capacity(UPLOAD_CHUNK);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(file))),
            Err(e) => Some((Err(e), None)),
        }
    })
}

async fn create(settings: &Settings, pool: &sqlx::PgPool, args: CreateArgs) -> anyhow::Result<()> {
    super::send::known_app(settings, &args.audience.app)?;
    if let Some(t) = &args.template {
        let templates = Templates::load(&settings.templates.dir)?;
        anyhow::ensure!(
            templates.contains(t),
            "unknown template {t:?}; add templates/{t}/<locale>.toml (in {})",
            settings.templates.dir.display()
        );
    }
    let json = |flag: &str, text: &str| -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{flag} is not JSON: {e}"))
    };
    let segment = segment(&args.audience)?;
    let new = NewCampaign {
        app: args.audience.app.clone(),
        name: args.name,
        content: Content {
            template: args.template,
            title: args.title,
            body: args.body,
            data: json("--data", &args.data)?,
            options: json("--options", &args.options)?,
            collapse_key: args.collapse_key,
        },
        priority: Some(args.priority),
        ttl_seconds: args.ttl,
        category: args.audience.category.clone(),
        segment,
        user_list_id: user_list(pool, &args.audience).await?,
        schedule: schedule(&args.audience),
        throttle_per_minute: args.throttle,
        created_by: Some(format!(
            "cli ({})",
            std::env::var("USER").unwrap_or_else(|_| "unknown user".into())
        )),
    };
    let (c, reach) = campaigns::create(pool, &context(settings), &apps(settings), &new, Utc::now())
        .await
        .map_err(flag_hint)?;
    println!("{}", c.id);
    println!(
        "campaign {:?} for app {}: {}, starts {}, priority {}, TTL {} s, throttle {}",
        c.name,
        c.app,
        c.state,
        ts(c.starts_at),
        c.priority,
        c.ttl_seconds,
        throttle_text(c.throttle_per_minute)
    );
    print!("{}", render_reach(&reach));
    println!(
        "the audience is fixed when the campaign starts: devices registered after that are not added"
    );
    Ok(())
}

async fn preview(
    settings: &Settings,
    pool: &sqlx::PgPool,
    args: PreviewArgs,
) -> anyhow::Result<()> {
    let a = &args.audience;
    super::send::known_app(settings, &a.app)?;
    let segment = segment(a)?;
    segment.check()?;
    let list = user_list(pool, a).await?;
    if !segment.all && segment == Segment::default() && list.is_none() {
        return Err(flag_hint(campaigns::CampaignError::EmptyAudience));
    }
    if let Some(id) = list {
        if campaigns::user_list(pool, id, Some(std::slice::from_ref(&a.app)))
            .await?
            .is_none()
        {
            return Err(flag_hint(campaigns::CampaignError::UnknownUserList(id)));
        }
    }
    let now = Utc::now();
    let when = schedule(a).resolve(now)?;
    let reach = campaigns::preview(
        pool,
        &context(settings),
        &a.app,
        &segment,
        list,
        a.category.as_deref(),
        when,
        now,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reach)?);
    } else {
        print!("{}", render_reach(&reach));
    }
    Ok(())
}

async fn show(pool: &sqlx::PgPool, id: Uuid, watch: bool, json: bool) -> anyhow::Result<()> {
    let c = campaigns::get(pool, id, None)
        .await?
        .ok_or(campaigns::CampaignError::NotFound(id))?;
    let progress = campaigns::progress(pool, id, Utc::now()).await?;
    if json {
        let mut value = serde_json::to_value(&c)?;
        value["progress"] = serde_json::to_value(&progress)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let live = watch || (std::io::stdout().is_terminal() && std::io::stderr().is_terminal());
    if !live || done(&c, &progress) {
        print!("{}", render_campaign(&c, &progress));
        return Ok(());
    }
    print!("{}", render_campaign_head(&c));
    let (c, progress) = follow(pool, c, progress).await?;
    print!("{}", render_progress(&c, &progress));
    Ok(())
}

/// Redraws the bar every second until the campaign has nothing left to do
/// or Ctrl-C; returns what it saw last.
async fn follow(
    pool: &sqlx::PgPool,
    mut c: Campaign,
    mut progress: Progress,
) -> anyhow::Result<(Campaign, Progress)> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40.cyan/blue}] {pos}/{len} ({percent}%) {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    // Piped with --watch, the bar is hidden: print a line per refresh
    // instead, so a log still shows the campaign moving.
    let hidden = bar.is_hidden();
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let t = &progress.total;
        let message = bar_message(&c, &progress);
        if hidden {
            println!("{}/{} settled, {message}", settled(t), t.targeted);
        }
        bar.set_message(message);
        bar.set_length(t.targeted.max(0) as u64);
        bar.set_position(settled(t).max(0) as u64);
        if done(&c, &progress) {
            bar.finish();
            return Ok((c, progress));
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = &mut ctrl_c => {
                bar.abandon_with_message("stopped watching (the campaign goes on)");
                return Ok((c, progress));
            }
        }
        c = campaigns::get(pool, c.id, None)
            .await?
            .ok_or(campaigns::CampaignError::NotFound(c.id))?;
        progress = campaigns::progress(pool, c.id, Utc::now()).await?;
    }
}

/// Nothing more will happen: every target was handed over (or dropped)
/// and every delivery is final. `progress.finished` alone is also true
/// before a campaign's audience is evaluated, when it has no target yet.
fn done(c: &Campaign, p: &Progress) -> bool {
    p.finished
        && matches!(
            c.state,
            campaigns::CampaignState::Completed | campaigns::CampaignState::Cancelled
        )
}

/// Devices whose fate is settled (the bar's position).
fn settled(t: &Counts) -> i64 {
    let counts = counts(t);
    SETTLED.iter().filter_map(|k| counts.get(*k)).sum()
}

/// The counts by the names the store gives them (the JSON's), so that a
/// count the store adds shows up here too.
fn counts(c: &Counts) -> std::collections::BTreeMap<String, i64> {
    serde_json::from_value(serde_json::to_value(c).expect("counts serialize")).unwrap_or_default()
}

/// The columns of the progress table: the usual order, then any other.
fn columns(c: &Counts) -> Vec<String> {
    let counts = counts(c);
    let mut columns: Vec<String> = ORDER
        .iter()
        .filter(|k| counts.contains_key(**k))
        .map(|k| k.to_string())
        .collect();
    columns.extend(counts.into_keys().filter(|k| !ORDER.contains(&k.as_str())));
    columns
}

fn bar_message(c: &Campaign, p: &Progress) -> String {
    let t = &p.total;
    format!(
        "{}: queued {} sent {} delivered {} failed {} opened {} · {}/min · ETA {}",
        c.state,
        t.queued,
        t.sent,
        t.delivered,
        t.failed,
        t.opened,
        p.per_minute,
        eta_text(c, p)
    )
}

fn eta_text(c: &Campaign, p: &Progress) -> String {
    match (done(c, p), c.started_at, p.eta) {
        (true, _, _) => "done".into(),
        (false, None, _) => format!("starts {}", ts(c.starts_at)),
        (false, _, Some(eta)) => ts(eta),
        (false, _, None) => "unknown (nothing moving)".into(),
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn throttle_text(t: Option<i32>) -> String {
    t.map_or("none".into(), |t| format!("{t} devices/min"))
}

/// The reach as a table by platform, with the total.
pub fn render_reach(r: &Reach) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>10} {:>11}",
        "platform", "users", "devices", "no consent"
    );
    for (platform, p) in &r.by_platform {
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>10} {:>11}",
            platform.as_str(),
            p.users,
            p.devices,
            p.no_consent
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>10} {:>11}",
        "total", r.users, r.devices, r.no_consent
    );
    let _ = writeln!(
        out,
        "largest wave (devices due at one moment): {}",
        r.largest_wave
    );
    out
}

pub fn render_list(list: &[Campaign]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36} {:<12} {:<24} {:<10} {:<8} {:<23} throttle",
        "id", "app", "name", "state", "priority", "starts"
    );
    for c in list {
        let _ = writeln!(
            out,
            "{:<36} {:<12} {:<24} {:<10} {:<8} {:<23} {}",
            c.id,
            c.app,
            c.name,
            c.state,
            c.priority,
            ts(c.starts_at),
            throttle_text(c.throttle_per_minute)
        );
    }
    out
}

fn render_campaign(c: &Campaign, p: &Progress) -> String {
    render_campaign_head(c) + &render_progress(c, p)
}

/// What the campaign is: content, audience, schedule and its life so far.
pub fn render_campaign_head(c: &Campaign) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "campaign {}  {:?}  app={}  state={}",
        c.id, c.name, c.app, c.state
    );
    let content = match (&c.content.template, &c.content.title, &c.content.body) {
        (Some(t), _, _) => format!("template {t}"),
        (None, title, body) => format!(
            "inline: {:?} / {:?}",
            title.as_deref().unwrap_or(""),
            body.as_deref().unwrap_or("")
        ),
    };
    let _ = writeln!(out, "  content: {content}");
    let _ = writeln!(
        out,
        "  priority {}, TTL {} s, throttle {}, consent category {}",
        c.priority,
        c.ttl_seconds,
        throttle_text(c.throttle_per_minute),
        c.category.as_deref().unwrap_or("(none)")
    );
    let schedule = match (&c.schedule.local_time, &c.schedule.date, &c.schedule.at) {
        (Some(t), Some(d), _) => format!("{t} local time on {d} in each device's timezone"),
        (_, _, Some(at)) => format!("at {}", ts(*at)),
        _ => "now".into(),
    };
    let _ = writeln!(
        out,
        "  schedule: {schedule}; audience evaluated from {}",
        ts(c.starts_at)
    );
    let _ = writeln!(
        out,
        "  audience: segment {}{}",
        serde_json::to_string(&c.segment).unwrap_or_default(),
        c.user_list_id
            .map(|l| format!(" ∩ user list {l}"))
            .unwrap_or_default()
    );
    let mut life = format!("  created {}", ts(c.created_at));
    for (what, at) in [
        ("started", c.started_at),
        ("last paused", c.paused_at),
        ("cancelled", c.cancelled_at),
        ("completed", c.completed_at),
    ] {
        if let Some(at) = at {
            let _ = write!(life, ", {what} {}", ts(at));
        }
    }
    let _ = writeln!(out, "{life}");
    out
}

/// The progress counts by platform, the rate and the ETA.
pub fn render_progress(c: &Campaign, p: &Progress) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let columns = columns(&p.total);
    let _ = write!(out, "\n  {:<10}", "platform");
    for h in &columns {
        let _ = write!(out, " {h:>10}");
    }
    let _ = writeln!(out);
    let row = |out: &mut String, name: &str, c: &Counts| {
        let _ = write!(out, "  {name:<10}");
        let counts = counts(c);
        for h in &columns {
            let _ = write!(out, " {:>10}", counts.get(h).copied().unwrap_or(0));
        }
        let _ = writeln!(out);
    };
    for (platform, c) in &p.by_platform {
        row(&mut out, platform.as_str(), c);
    }
    row(&mut out, "total", &p.total);
    let _ = writeln!(
        out,
        "\n  rate: {} devices queued in the last minute; ETA {}{}",
        p.per_minute,
        eta_text(c, p),
        if done(c, p) { "; finished" } else { "" }
    );
    out
}
