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
    match &config.hep.collector {
        None => out.push_str("# HEP export: off (no hep.collector)\n"),
        Some(collector) => {
            let key = match &config.hep.password_file {
                Some(path) => format!("auth key from {}", path.display()),
                None => "no auth key".to_owned(),
            };
            let what = match (config.hep.rtcp, config.hep.reports) {
                (true, true) => "SIP, RTCP and quality reports",
                (true, false) => "SIP and RTCP",
                (false, true) => "SIP and quality reports",
                (false, false) => "SIP",
            };
            out.push_str(&format!(
                "# HEP export: {what} to udp:{collector} as capture id {}, {key}\n",
                config.hep.node_id
            ));
        }
    }
    out.push_str(&match crate::targets::signing_key(config) {
        Ok(Some(key)) => format!(
            "# manifest signing key: {} (fingerprint {})\n",
            crate::targets::signing_key_path(config).display(),
            key.fingerprint()
        ),
        Ok(None) => format!(
            "# manifest signing key: none ({} does not exist): manifests are written unsigned\n",
            crate::targets::signing_key_path(config).display()
        ),
        Err(e) => format!("# manifest signing key: NOT USABLE: {e:#}\n"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hep_export_is_described_without_its_key() {
        let mut c = Config::default();
        assert!(show(&c, "x").contains("# HEP export: off (no hep.collector)\n"));
        c.hep.collector = Some("homer:9060".into());
        c.hep.node_id = 7;
        c.hep.password_file = Some("/etc/callvault/hep-key".into());
        let text = show(&c, "x");
        assert!(
            text.contains(
                "# HEP export: SIP, RTCP and quality reports to udp:homer:9060 as capture id 7, auth key from \
                 /etc/callvault/hep-key\n"
            ),
            "{text}"
        );
        assert!(text.contains("[hep]\ncollector = \"homer:9060\"\nnode_id = 7\n"), "{text}");
    }
}
