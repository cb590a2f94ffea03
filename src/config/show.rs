//! `callvault config show`: the effective configuration as TOML, with where each archive's
//! credentials come from — the access key id, never a secret.

use super::{Config, archive_names};

/// The effective configuration, read from `origin`, as a TOML document with comments.
pub fn show(config: &Config, origin: &str) -> String {
    let mut out =
        format!("# callvault configuration in effect\n# read from: {origin}; the command line overrides it\n");
    let names = archive_names(&config.archives());
    for (archive, name) in config.archives().iter().zip(&names) {
        let place = archive.place();
        let credentials = if archive.is_s3() {
            crate::targets::describe_credentials(archive)
        } else {
            "none needed (a directory)".to_owned()
        };
        out.push_str(&format!("# archive {name:?} ({place}): credentials {credentials}\n"));
    }
    if config.archive.is_empty() {
        out.push_str("# no [[archive]]: recordings go to ./callvault-archive\n");
    }
    let scheme = if config.http.tls() { "https" } else { "http" };
    match config.http.metrics_listen.as_deref() {
        Some("off") => out.push_str("# /metrics and /health: not served (http.metrics_listen = \"off\")\n"),
        Some(addr) => out.push_str(&format!("# /metrics and /health of `run`: {scheme}://{addr}\n")),
        None => out.push_str(&format!(
            "# /metrics and /health of `run`: {scheme}://{} (the default; skipped with a warning if taken)\n",
            super::DEFAULT_METRICS_LISTEN
        )),
    }
    match config.http.api_listen.as_deref() {
        Some("off") => out.push_str("# API and dashboard: not served (http.api_listen = \"off\")\n"),
        Some(addr) => out.push_str(&format!("# API and dashboard of `run`: {scheme}://{addr}/\n")),
        None => out.push_str(&format!(
            "# API and dashboard of `run`: {scheme}://{}/ (the default; skipped with a warning if taken)\n",
            crate::api::DEFAULT_LISTEN
        )),
    }
    out.push_str(&if config.http.authenticates() {
        format!(
            "# HTTP authentication: {} user(s), {} token(s); every request but /health authenticates\n",
            config.http.users.len(),
            config.http.tokens.len()
        )
    } else {
        "# HTTP authentication: none (loopback only)\n".to_owned()
    });
    out.push('\n');
    // Hashes are no secrets, but they are no one's business either.
    let mut shown = config.clone();
    for u in &mut shown.http.users {
        u.password_hash = "(argon2 hash, not shown)".into();
    }
    for t in &mut shown.http.tokens {
        t.sha256 = "(not shown)".into();
    }
    match toml::to_string(&shown) {
        Ok(text) => out.push_str(&text),
        Err(e) => out.push_str(&format!("# cannot print the configuration: {e}\n")),
    }
    out
}
