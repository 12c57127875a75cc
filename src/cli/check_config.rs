//! `pushrelay check-config`: load everything the daemon would load —
//! configuration, templates, provider credentials — and explain every
//! problem; then ask the database what the daemon would warn about.

use crate::config::Settings;
use crate::providers::Providers;
use crate::store;
use crate::templates::Templates;

pub(super) async fn run(settings: Settings) -> anyhow::Result<()> {
    let templates = Templates::load(&settings.templates.dir)?;
    // Reads every key and certificate the providers name.
    Providers::from_settings(&settings)?;
    let target = store::describe(&store::connect_options(&settings.database.url)?);
    println!(
        "configuration OK: {} app(s) [{}], {} template variant(s) in {}, database {target}",
        settings.apps.len(),
        settings.apps.keys().cloned().collect::<Vec<_>>().join(", "),
        templates.len(),
        settings.templates.dir.display(),
    );
    // The database is the daemon's business, not the file's: an unreachable
    // one is reported, not a failure of the check.
    match store::connect(&settings.database).await {
        Ok(pool) => {
            if let Err(e) = store::check_schema(&pool).await {
                println!("warning: {e}");
            }
            if let Some(advice) = store::autovacuum_warning(&pool).await? {
                println!("warning: {advice}");
            }
            // A running daemon paused a provider: the configuration on
            // disk is probably what is wrong.
            match store::holds::active(&pool, None).await {
                Ok(pauses) if pauses.is_empty() => {}
                Ok(pauses) => print!("warning: {}", super::render_holds(&pauses)),
                Err(e) => println!("note: could not read provider pauses: {e}"),
            }
        }
        Err(e) => println!("note: {e}"),
    }
    Ok(())
}
