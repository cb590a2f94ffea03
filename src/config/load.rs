//! Reading and checking the configuration: every problem names the file, line and key, says
//! what is wrong and hints at the fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Archive, AudioFormat, AudioLayout, Config, DEFAULT_PATH};

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, or "command line".
    pub origin: String,
    /// Line and column (1-based) in the file, when known.
    pub position: Option<(usize, usize)>,
    /// The key, as a path (`capture.buffer_mib`, `archive[1].url`); empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file {path}: {error}; check the path (--config) and its permissions")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error (in the message, so not its source: a chain printed
        /// whole would name it twice).
        error: std::io::Error,
    },
    /// The file or the command line holds something callvault cannot use.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// The configuration file to read: `explicit` (which must exist), else [`DEFAULT_PATH`] when it
/// exists, else none (built-in defaults).
pub fn locate_default(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(path) => Some(path.to_owned()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// Reads and checks the file at `path` (`None`: the built-in defaults).
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let Some(path) = path else { return Ok(Config::default()) };
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
    load_text(&text, &path.display().to_string())
}

/// Parses and checks configuration `text`; problems are reported as coming from `origin`.
pub fn load_text(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let problem = |key: String, span: Option<Range<usize>>, message: String, hint: Option<String>| Problem {
        origin: origin.to_owned(),
        position: span.map(|s| position(text, s.start)),
        key,
        message,
        hint,
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::Invalid(vec![problem(
            String::new(),
            e.span(),
            format!("not valid TOML: {}", e.message().trim()),
            Some("check quoting, brackets and `key = value` syntax near this position".into()),
        )])
    })?;
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        let inner = e.into_inner();
        let message = inner.message().trim().to_owned();
        let (key, hint) = hint_for(&key, &message);
        let span = locate(text, &key).or_else(|| inner.span());
        ConfigError::Invalid(vec![problem(key, span, message, hint)])
    })?;
    let problems: Vec<Problem> = validate(&config)
        .into_iter()
        .map(|(key, message, hint)| {
            let span = locate(text, &key);
            problem(key, span, message, hint)
        })
        .collect();
    if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid(problems)) }
}

/// Checks a configuration assembled from the file and the command line: the file was checked
/// already, so what is wrong now came from the command line.
pub(crate) fn check_command_line(config: &Config) -> Result<(), ConfigError> {
    let problems: Vec<Problem> = validate(config)
        .into_iter()
        .map(|(key, message, hint)| Problem { origin: "command line".into(), position: None, key, message, hint })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems)) }
}

/// 1-based line and column of byte `offset`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The span of the key at `path` (`a.b`, `a[1].b`) in `text`, if it is written there.
fn locate(text: &str, path: &str) -> Option<Range<usize>> {
    if path.is_empty() {
        return None;
    }
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut found: Option<Range<usize>> = None;
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        if let Some(v) = value {
            table = v.get_ref().as_table()?;
        }
        let (key, v) = table.iter().find(|(k, _)| k.get_ref() == name)?;
        found = Some(key.span());
        value = Some(v);
        if let Some(i) = index {
            let item = v.get_ref().get(i)?;
            found = Some(item.span());
            value = Some(item);
        }
    }
    found
}

/// The key to report (the unknown one, for an unknown key) and a hint for a serde error.
fn hint_for(path: &str, message: &str) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (unknown, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let key = if path.ends_with(unknown) {
            path.to_owned()
        } else if path.is_empty() {
            unknown.to_owned()
        } else {
            format!("{path}.{unknown}")
        };
        let lower = unknown.to_ascii_lowercase();
        if key.starts_with("hep.") && lower.contains("password") {
            return (
                key,
                Some(
                    "secrets are never read from the configuration file: put the HEP key in a file \
                     (mode 0600 or 0640) and name it with `password_file`"
                        .into(),
                ),
            );
        }
        if ["secret", "access_key", "password", "token", "credential"].iter().any(|s| lower.contains(s)) {
            return (
                key,
                Some(
                    "secrets are never read from the configuration file: set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY in the service's environment, or name a credentials file with \
                     `credentials_file` in the [[archive]] (mode 0600 or 0640)"
                        .into(),
                ),
            );
        }
        let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
        let nearest = expected
            .iter()
            .filter(|k| strsim::damerau_levenshtein(unknown, k) <= 2 || strsim::jaro_winkler(unknown, k) >= 0.85)
            .max_by(|a, b| strsim::jaro_winkler(unknown, a).total_cmp(&strsim::jaro_winkler(unknown, b)));
        let hint = match nearest {
            Some(k) => format!("did you mean `{k}`?"),
            None if expected.is_empty() => "remove it; see deploy/callvault.toml for every key".into(),
            None => format!("the keys here are: {}", expected.join(", ")),
        };
        return (key, Some(hint));
    }
    let example = example(path).map(|v| format!("for example `{} = {v}` (the default)", leaf(path)));
    (path.to_owned(), example.or_else(|| Some("see deploy/callvault.toml for the keys and their values".into())))
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// The default value at `path`, written as TOML.
fn example(path: &str) -> Option<String> {
    let defaults = toml::Value::try_from(Config::default()).ok()?;
    let mut v = &defaults;
    for segment in path.split('.') {
        v = v.get(segment)?;
    }
    match v {
        toml::Value::Table(_) => None,
        other => Some(other.to_string()),
    }
}

/// Impossible values: (key, what is wrong, hint).
fn validate(c: &Config) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    let mut bad = |key: &str, message: String, hint: &str| {
        out.push((key.to_owned(), message, (!hint.is_empty()).then(|| hint.to_owned())));
    };
    let range = |bad: &mut dyn FnMut(&str, String, &str), key: &str, v: u64, lo: u64, hi: u64, hint: &str| {
        if hi == u64::MAX && v < lo {
            bad(key, format!("must be at least {lo}"), hint);
        } else if v < lo || v > hi {
            bad(key, format!("{v} is out of range {lo}..={hi}"), hint);
        }
    };
    let cap = &c.capture;
    range(
        &mut bad,
        "capture.buffer_mib",
        cap.buffer_mib.into(),
        1,
        2047,
        "256 MiB rides out disk stalls at SPAN rates",
    );
    range(&mut bad, "capture.snaplen", cap.snaplen.into(), 64, 262_144, "65535 keeps whole SIP messages");
    for (i, iface) in cap.interfaces.iter().enumerate() {
        if iface.is_empty() || iface.contains(['/', ' ']) || iface.len() > 15 {
            bad(
                &format!("capture.interfaces[{i}]"),
                format!("{iface:?} is not an interface name"),
                "list them with `ip link`",
            );
        } else if cap.interfaces[..i].contains(iface) {
            bad(&format!("capture.interfaces[{i}]"), format!("{iface:?} is listed twice"), "name each interface once");
        }
    }
    if c.storage.data_dir.as_os_str().is_empty() {
        bad("storage.data_dir", "is empty".into(), "e.g. data_dir = \"/var/lib/callvault\"");
    }
    range(&mut bad, "storage.high_watermark", c.storage.high_watermark.into(), 1, 100, "a percentage, e.g. 90");
    let rec = &c.recording;
    range(&mut bad, "recording.reorder_ms", rec.reorder_ms.into(), 0, 500, "160 ms suits most networks");
    range(&mut bad, "recording.finishers", rec.finishers as u64, 1, 64, "");
    if rec.audio_format == AudioFormat::WavG711 && rec.audio_layout == AudioLayout::Mono {
        bad(
            "recording.audio_format",
            "wav-g711 keeps each party's G.711 codes as captured; a mono recording mixes the parties, which no \
             G.711 code can hold"
                .into(),
            "use audio_layout = \"stereo\" or \"split\", or audio_format = \"wav\" for mono",
        );
    }
    if ![16_000, 48_000].contains(&rec.opus_rate) {
        bad(
            "recording.opus_rate",
            format!("is {}; Opus is recorded at 16000 or 48000 Hz", rec.opus_rate),
            "16000 (speech, a third of the size) or 48000 (Opus's full band)",
        );
    }
    range(&mut bad, "recording.mixers", rec.mixers as u64, 0, 64, "0 picks one per CPU");
    if (!rec.pause_dtmf.is_empty() || !rec.resume_dtmf.is_empty())
        && let Err(e) = mixer::mix::pause::PauseCodes::parse(&rec.pause_dtmf, &rec.resume_dtmf)
    {
        bad("recording.pause_dtmf", e, "set both, e.g. pause_dtmf = \"*1\" and resume_dtmf = \"*2\"");
    }
    if !rec.pause_header.is_empty()
        && (rec.pause_header.len() > 64
            || !rec.pause_header.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b)))
    {
        bad(
            "recording.pause_header",
            format!("{:?} is not a SIP header name", rec.pause_header),
            "a token such as \"X-Record-Pause\", without the colon",
        );
    }
    // Timeouts in seconds (lingers may be 0, up to 10 min; the others up to 30 days), and every
    // limit at least 1: checked on the values as the file writes them.
    let numbers = toml::Value::try_from(c).ok();
    for (section, lo, hint) in [("timeouts", 1, "in seconds"), ("limits", 1, "leave it out for the default")] {
        let Some(table) = numbers.as_ref().and_then(|n| n.get(section)).and_then(toml::Value::as_table) else {
            continue;
        };
        for (key, value) in table {
            let v = value.as_integer().map_or(0, |v| v.max(0) as u64);
            let (lo, hi) = match (section, key.ends_with("_linger")) {
                ("timeouts", true) => (0, 600),
                ("timeouts", false) => (lo, 30 * 86_400),
                _ => (lo, u64::MAX),
            };
            range(&mut bad, &format!("{section}.{key}"), v, lo, hi, hint);
        }
    }
    validate_archives(&c.archive, &mut bad);
    range(&mut bad, "shipping.concurrency", c.shipping.concurrency as u64, 1, 256, "16 suits S3");
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
        bad(
            "log.level",
            format!("{:?} is not a level or filter: {e}", c.log.level),
            "error, warn, info, debug or trace",
        );
    }
    if c.service.user.is_empty() {
        bad("service.user", "is empty".into(), "the package creates the user \"callvault\"");
    }
    validate_http(&c.http, &mut bad);
    validate_hep(&c.hep, &mut bad);
    if c.signing.key_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        bad("signing.key_file", "is empty".into(), "leave it out for /etc/callvault/signing.key, or name the key file");
    }
    range(&mut bad, "metrics.health_window", c.metrics.health_window, 1, 86_400, "60 judges the last minute");
    range(
        &mut bad,
        "metrics.health_max_unshipped_age",
        c.metrics.health_max_unshipped_age,
        1,
        u64::MAX,
        "3600 is an hour",
    );
    range(
        &mut bad,
        "metrics.health_max_quiet",
        c.metrics.health_max_quiet,
        0,
        u64::MAX,
        "300 is five minutes; 0 never reports a quiet interface",
    );
    out
}

/// `[http]`: addresses, TLS, users and tokens. An address other than loopback needs HTTPS and
/// authentication.
fn validate_http(h: &super::Http, bad: &mut dyn FnMut(&str, String, &str)) {
    let secured = h.tls() && h.authenticates();
    for (key, v) in [("http.metrics_listen", &h.metrics_listen), ("http.api_listen", &h.api_listen)] {
        let Some(addr) = v.as_deref().filter(|a| *a != "off") else { continue };
        match addr.parse::<std::net::SocketAddr>() {
            Err(_) => bad(key, format!("{addr:?} is not an address:port"), "e.g. \"127.0.0.1:9750\", or \"off\""),
            Ok(a) if !a.ip().is_loopback() && !secured => bad(
                key,
                format!("{addr} is not a loopback address, and {}", crate::http::UNSECURED),
                "set http.tls_cert, http.tls_key and at least one [[http.user]] or [[http.token]]; or listen on \
                 127.0.0.1 or ::1",
            ),
            Ok(_) => {}
        }
    }
    if h.tls_cert.is_some() != h.tls_key.is_some() {
        let key = if h.tls_cert.is_some() { "http.tls_key" } else { "http.tls_cert" };
        bad(key, "is missing: HTTPS needs both a certificate and its key".into(), "set http.tls_cert and http.tls_key");
    }
    let mut names = std::collections::HashSet::new();
    for (i, u) in h.users.iter().enumerate() {
        if u.name.is_empty() || u.name.contains(':') || u.name.chars().any(char::is_control) {
            bad(
                &format!("http.user[{i}].name"),
                format!("{:?} is not a user name", u.name),
                "letters, digits, -_.@, no ':'",
            );
        }
        if !names.insert(u.name.as_str()) {
            bad(&format!("http.user[{i}].name"), format!("{:?} is given twice", u.name), "one [[http.user]] per name");
        }
        if let Err(e) = crate::http::auth::check_password_hash(&u.password_hash) {
            bad(&format!("http.user[{i}].password_hash"), e, "generate it with `callvault config hash-password`");
        }
    }
    for (i, t) in h.tokens.iter().enumerate() {
        if t.name.is_empty() || t.name.chars().any(char::is_control) {
            bad(&format!("http.token[{i}].name"), format!("{:?} is not a token name", t.name), "e.g. \"prometheus\"");
        }
        if !names.insert(t.name.as_str()) {
            bad(&format!("http.token[{i}].name"), format!("{:?} is already a user or token", t.name), "one name each");
        }
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            bad(
                &format!("http.token[{i}].sha256"),
                "is not 64 lowercase hex digits".into(),
                "generate a token and its hash with `callvault config new-token NAME`",
            );
        }
    }
}

fn validate_hep(h: &super::Hep, bad: &mut dyn FnMut(&str, String, &str)) {
    if let Some(collector) = &h.collector {
        let hint = "the collector's host:port (UDP), e.g. \"homer.example.net:9060\" or \"[2001:db8::5]:9060\"";
        match collector.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
                let ipv6_ok = bare.is_none_or(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
                if !ipv6_ok || (bare.is_none() && host.contains(':')) || host.contains(char::is_whitespace) {
                    bad("hep.collector", format!("{collector:?} is not a host:port"), hint);
                }
            }
            _ => bad("hep.collector", format!("{collector:?} is not a host:port"), hint),
        }
    }
    if let Some(name) = &h.node_name
        && (name.is_empty() || name.len() > 255)
    {
        bad("hep.node_name", "must be 1 to 255 bytes long".into(), "leave it out to send none");
    }
    if h.password_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        bad("hep.password_file", "is empty".into(), "a file holding the key, e.g. \"/etc/callvault/hep-key\"");
    }
}

fn validate_archives(archives: &[Archive], bad: &mut dyn FnMut(&str, String, &str)) {
    let names = super::archive_names(archives);
    for (i, a) in archives.iter().enumerate() {
        let key = |k: &str| format!("archive[{i}].{k}");
        match (&a.path, &a.url) {
            (Some(_), Some(_)) => bad(
                &key("url"),
                "an archive has either `path` or `url`, not both".into(),
                "split it into two [[archive]] tables",
            ),
            (None, None) => bad(
                &format!("archive[{i}]"),
                "has neither `path` (a directory) nor `url` (s3://BUCKET/PREFIX)".into(),
                "add one of them",
            ),
            (None, Some(url)) => {
                let bucket = url.strip_prefix("s3://").map(|r| r.split('/').next().unwrap_or(""));
                if bucket.is_none_or(str::is_empty) {
                    bad(
                        &key("url"),
                        format!("{url:?} is not an S3 URL"),
                        "write s3://BUCKET or s3://BUCKET/PREFIX; a directory goes in `path`",
                    );
                }
            }
            (Some(path), None) => {
                if path.as_os_str().is_empty() {
                    bad(&key("path"), "is empty".into(), "the archive directory, e.g. \"/mnt/archive\"");
                }
                let s3_only = [
                    ("endpoint", a.endpoint.is_some()),
                    ("ca_file", a.ca_file.is_some()),
                    ("profile", a.profile.is_some()),
                    ("credentials_file", a.credentials_file.is_some()),
                    ("region", a.region.is_some()),
                    ("multipart_mib", a.multipart_mib.is_some()),
                    ("site", a.site.is_some()),
                    ("object_lock", a.object_lock.is_some()),
                    ("lock_days", a.lock_days.is_some()),
                    ("bandwidth_limit", a.bandwidth_limit.is_some()),
                    ("path_style", a.path_style),
                    ("allow_http", a.allow_http),
                ];
                for (k, set) in s3_only {
                    if set {
                        bad(
                            &key(k),
                            "applies only to S3 archives (`url`)".into(),
                            "remove it from this directory archive",
                        );
                    }
                }
            }
        }
        match (a.object_lock, a.lock_days) {
            (Some(_), None) => bad(&key("object_lock"), "needs `lock_days`".into(), "e.g. lock_days = 365"),
            (None, Some(_)) => {
                bad(&key("lock_days"), "needs `object_lock`".into(), "object_lock = \"compliance\" or \"governance\"")
            }
            (Some(_), Some(0)) => bad(&key("lock_days"), "must be at least 1".into(), ""),
            _ => {}
        }
        if a.retention_days == Some(0) {
            bad(&key("retention_days"), "must be at least 1".into(), "leave it out to keep every recording");
        }
        if a.url.is_some() && a.link.is_some() {
            bad(&key("link"), "applies only to directory archives".into(), "remove it from this S3 archive");
        }
        if a.url.is_some() && a.retention_days.is_some() {
            bad(
                &key("retention_days"),
                "applies only to directory archives: callvault does not delete from buckets".into(),
                "expire objects with a lifecycle rule on the bucket; object_lock/lock_days keep them at least that long",
            );
        }
        if !a.encrypt_to.is_empty()
            && let Err(problem) = shipper::target::seal::Sealing::new(&a.encrypt_to)
        {
            bad(&key("encrypt_to"), problem, "list the recipients' public keys: encrypt_to = [\"age1…\"]");
        }
        if a.multipart_mib == Some(0) {
            bad(&key("multipart_mib"), "must be at least 1".into(), "16 is the default");
        }
        if a.region.as_deref() == Some("") {
            bad(&key("region"), "is empty".into(), "e.g. region = \"us-east-1\"");
        }
        if a.name.as_deref() == Some("") {
            bad(&key("name"), "is empty".into(), "leave it out for the default name");
        } else if names[..i].contains(&names[i]) {
            bad(&key("name"), format!("{:?} names two archives", names[i]), "give each [[archive]] its own `name`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        match load_text(text, "test.toml") {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_line_and_a_suggestion() {
        let p = problems("[capture]\ninterfaces = [\"eth1\"]\nbufer_mib = 512\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "capture.bufer_mib");
        assert_eq!(p[0].position, Some((3, 1)));
        assert_eq!(p[0].hint.as_deref(), Some("did you mean `buffer_mib`?"));
        let text = p[0].to_string();
        assert!(text.starts_with("test.toml:3:1: key `capture.bufer_mib`: unknown field"), "{text}");

        let p = problems("[storage]\ndata_dir = \"/d\"\n[capturing]\n");
        assert_eq!((p[0].key.as_str(), p[0].position), ("capturing", Some((3, 2))));
        assert_eq!(p[0].hint.as_deref(), Some("did you mean `capture`?"));
    }

    #[test]
    fn secrets_in_the_file_are_refused_without_echoing_them() {
        let p = problems("[[archive]]\nurl = \"s3://b/p\"\nsecret_access_key = \"TOPSECRET\"\n");
        assert_eq!(p[0].key, "archive[0].secret_access_key");
        assert_eq!(p[0].position, Some((3, 1)));
        let text = p[0].to_string();
        assert!(text.contains("credentials_file") && !text.contains("TOPSECRET"), "{text}");
    }

    #[test]
    fn wrong_types_name_the_key_and_show_the_default() {
        let p = problems("[capture]\nbuffer_mib = \"lots\"\n");
        assert_eq!(p[0].key, "capture.buffer_mib");
        assert_eq!(p[0].position, Some((2, 1)));
        assert!(p[0].message.contains("invalid type"), "{}", p[0]);
        assert_eq!(p[0].hint.as_deref(), Some("for example `buffer_mib = 256` (the default)"));

        let p = problems("[storage]\nretention = \"forever\"\n");
        assert_eq!((p[0].key.as_str(), p[0].position), ("storage.retention", Some((2, 1))));
        assert!(p[0].message.contains("keep, delete, days:N"), "{}", p[0]);

        let p = problems("[capture\n");
        assert!(p[0].message.starts_with("not valid TOML"), "{}", p[0]);
        assert_eq!(p[0].position.map(|(l, _)| l), Some(1));
    }

    #[test]
    fn impossible_values_are_all_reported_with_their_lines() {
        let text = "[capture]\nbuffer_mib = 0\ninterfaces = [\"eth1\", \"eth1\"]\n\n[[archive]]\npath = \"/a\"\n\n\
                    [[archive]]\nurl = \"s4://x\"\nobject_lock = \"compliance\"\n\n[[archive]]\npath = \"/b\"\nendpoint = \"https://x\"\n";
        let p = problems(text);
        let found: Vec<(&str, Option<usize>)> = p.iter().map(|p| (p.key.as_str(), p.position.map(|x| x.0))).collect();
        assert_eq!(
            found,
            [
                ("capture.buffer_mib", Some(2)),
                ("capture.interfaces[1]", Some(3)),
                ("archive[1].url", Some(9)),
                ("archive[1].object_lock", Some(10)),
                ("archive[2].endpoint", Some(14)),
            ],
            "{p:#?}"
        );
    }

    #[test]
    fn hep_is_checked_like_every_other_section() {
        let c = load_text("[hep]\ncollector = \"homer:9060\"\nnode_id = 7\n", "t").unwrap();
        assert_eq!((c.hep.collector.as_deref(), c.hep.node_id, c.hep.reports), (Some("homer:9060"), 7, true));
        assert!(load_text("[hep]\ncollector = \"[2001:db8::5]:9060\"\n", "t").is_ok());
        for bad in ["homer", "homer:0", "homer:x", ":9060", "2001:db8::5:9060", "[zz]:9060", "a b:1"] {
            let p = problems(&format!("[log]\nlevel = \"info\"\n[hep]\ncollector = \"{bad}\"\n"));
            assert_eq!((p[0].key.as_str(), p[0].position), ("hep.collector", Some((4, 1))), "{bad}: {p:?}");
        }
        let p = problems("[hep]\nnode_id = -1\n");
        assert_eq!((p[0].key.as_str(), p[0].position), ("hep.node_id", Some((2, 1))));
        let p = problems("[hep]\nnode_name = \"\"\n");
        assert_eq!(p[0].key, "hep.node_name");
        let p = problems("[hep]\npassword = \"hunter2\"\n");
        assert_eq!(p[0].key, "hep.password");
        let text = p[0].to_string();
        assert!(text.contains("password_file") && !text.contains("hunter2"), "{text}");
    }

    #[test]
    fn the_defaults_are_valid_and_print_back_to_themselves() {
        let c = load_text("", "empty.toml").unwrap();
        assert_eq!(c, Config::default());
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(load_text(&text, "x").unwrap(), Config::default());
    }
}
