//! SIGHUP: re-read the config file and apply the reloadable options
//! (operations.md §2.5). Everything is validated first and applied at once;
//! an invalid file changes nothing.

use flare_daemon::Settings;

use crate::config::{NodeConfig, SPECS};
use crate::node::Node;

/// Reload the configuration file into the running node.
pub fn reload(node: &Node) {
    tracing::info!("received signal [SIGHUP] -> reloading");
    let current = node.config();
    let file = match current.settings.reload_file() {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("{e}");
            tracing::warn!("invalid config file -> skip reloading");
            return;
        }
    };
    let (next, changes) = match merge_dynamic(&current.settings, &file) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("{e}");
            tracing::warn!("invalid config file -> skip reloading");
            return;
        }
    };
    let config = match NodeConfig::from_settings(next) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{e}");
            tracing::warn!("invalid config file -> skip reloading");
            return;
        }
    };
    for (name, old, new) in &changes {
        tracing::info!("  {}: {old} -> {new}", name.replace('-', "_"));
    }
    if let Some(log) = &node.log {
        let facility = config.settings.str("log-facility").unwrap_or("");
        if current.settings.str("log-facility").unwrap_or("") != facility {
            tracing::info!("re-opening syslog...");
            if let Err(e) = log.set_facility(facility) {
                tracing::warn!("{e}");
            }
        }
    }
    node.set_config(config);
    tracing::info!("process successfully reloaded");
}

type Change = (&'static str, String, String);

/// The current settings with every reloadable option present in the file
/// replaced by the file's value.
fn merge_dynamic(
    current: &Settings,
    file: &Settings,
) -> Result<(Settings, Vec<Change>), flare_daemon::ConfigError> {
    let mut next = current.clone();
    let mut changes = Vec::new();
    for spec in SPECS.iter().filter(|s| s.dynamic) {
        if !file.is_set(spec.name) {
            continue;
        }
        let new = file.str(spec.name).unwrap_or("").to_string();
        let old = current.str(spec.name).unwrap_or("").to_string();
        next.set(spec.name, &new)?;
        changes.push((spec.name, old, new));
    }
    Ok((next, changes))
}
