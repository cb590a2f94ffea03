//! [`Credentials`]: the access key, secret key and optional session token, from the
//! configuration, the environment or an AWS credentials file.

use std::fmt;
use std::path::{Path, PathBuf};

/// SigV4 credentials. `Debug` shows the access key only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why no credentials could be found.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Neither the environment nor a credentials file provides them.
    #[error(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or write them to {file} under [{profile}]"
    )]
    Missing {
        /// The credentials file that was looked at.
        file: PathBuf,
        /// The profile that was looked for.
        profile: String,
    },
    /// Only one of the access key and the secret key is set.
    #[error("{place}: {present} is set but {missing} is not; set both")]
    Incomplete {
        /// Where: "environment" or the file and profile.
        place: String,
        /// The one that is set.
        present: &'static str,
        /// The one that is missing.
        missing: &'static str,
    },
    /// The credentials file exists but cannot be read.
    #[error("cannot read the credentials file {path}; check its permissions")]
    File {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(access_key: &str, secret_key: &str, session_token: Option<String>) -> Credentials {
        Credentials { access_key: access_key.to_owned(), secret_key: secret_key.to_owned(), session_token }
    }

    /// The access key id.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// Looks in the usual places, in order: the variables `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; then the credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`), profile `profile`, else
    /// `AWS_PROFILE`, else `default`.
    pub fn from_environment(profile: Option<&str>) -> Result<Credentials, CredentialsError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(creds) =
            from_pairs("environment", var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"), var("AWS_SESSION_TOKEN"))?
        {
            return Ok(creds);
        }
        let file = var("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).unwrap_or_else(|| {
            let home = var("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".aws/credentials")
        });
        let profile = profile.map(str::to_owned).or_else(|| var("AWS_PROFILE")).unwrap_or_else(|| "default".into());
        match Credentials::from_file(&file, &profile)? {
            Some(creds) => Ok(creds),
            None => Err(CredentialsError::Missing { file, profile }),
        }
    }

    /// Reads profile `profile` of an AWS credentials file (INI: `[profile]`, then
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`). `None` if the file or
    /// the profile does not exist.
    pub fn from_file(path: &Path, profile: &str) -> Result<Option<Credentials>, CredentialsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CredentialsError::File { path: path.to_owned(), source }),
        };
        let mut section = String::new();
        let (mut key, mut secret, mut token) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().trim_start_matches("profile ").trim().to_owned();
                continue;
            }
            if section != profile {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                let v = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
                match k.trim() {
                    "aws_access_key_id" => key = v,
                    "aws_secret_access_key" => secret = v,
                    "aws_session_token" => token = v,
                    _ => {}
                }
            }
        }
        from_pairs(&format!("{} [{profile}]", path.display()), key, secret, token)
    }
}

fn from_pairs(
    place: &str,
    key: Option<String>,
    secret: Option<String>,
    token: Option<String>,
) -> Result<Option<Credentials>, CredentialsError> {
    match (key, secret) {
        (Some(access_key), Some(secret_key)) => Ok(Some(Credentials { access_key, secret_key, session_token: token })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(CredentialsError::Incomplete {
            place: place.to_owned(),
            present: "the access key id",
            missing: "the secret access key",
        }),
        (None, Some(_)) => Err(CredentialsError::Incomplete {
            place: place.to_owned(),
            present: "the secret access key",
            missing: "the access key id",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = AK1\naws_secret_access_key = SK1\n\n\
             [profile archive]\n# comment\naws_access_key_id=AK2\naws_secret_access_key=SK2\naws_session_token=T2\n\
             [half]\naws_access_key_id=AK3\n",
        )
        .unwrap();
        let default = Credentials::from_file(&path, "default").unwrap().unwrap();
        assert_eq!(default, Credentials::new("AK1", "SK1", None));
        let archive = Credentials::from_file(&path, "archive").unwrap().unwrap();
        assert_eq!(archive, Credentials::new("AK2", "SK2", Some("T2".into())));
        assert!(Credentials::from_file(&path, "nope").unwrap().is_none());
        let half = Credentials::from_file(&path, "half").unwrap_err();
        assert!(half.to_string().contains("secret access key"), "{half}");
        assert!(Credentials::from_file(&dir.path().join("missing"), "default").unwrap().is_none());
        assert!(!format!("{archive:?}").contains("SK2"));
    }
}
