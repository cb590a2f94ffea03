//! [`S3Error`]: what went wrong talking to an S3-compatible store, and how the shipper reacts.

use crate::target::Disposition;

/// A failed request to an S3-compatible store. Each message says which request, what the store
/// (or the network) said, and what to do. Cloneable: one manifest write can fail for several
/// recordings at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    /// The store answered with an error status.
    #[error("{op} {resource}: the store answered {status}{}{}; {}", code_text(code), message_text(message), hint(*status, code))]
    Status {
        /// The request, e.g. "upload" or "list".
        op: &'static str,
        /// `s3://bucket/key` of the request.
        resource: String,
        /// HTTP status.
        status: u16,
        /// The S3 error code (e.g. `AccessDenied`), empty when the answer had no body.
        code: String,
        /// The store's message, if any.
        message: String,
    },
    /// No usable answer: the connection failed, was reset, or timed out.
    #[error(
        "{op} {resource}: no answer from {endpoint} ({reason}); the store is unreachable or overloaded — retrying with backoff, recordings stay queued"
    )]
    Transport {
        /// The request.
        op: &'static str,
        /// `s3://bucket/key` of the request.
        resource: String,
        /// The endpoint URL.
        endpoint: String,
        /// What the HTTP client said, with its causes.
        reason: String,
    },
    /// The TLS handshake failed: the certificate is not trusted or names another host.
    #[error(
        "{op} {resource}: TLS with {endpoint} failed: {reason}; if the store uses a private CA, give its certificate with --s3-ca-file (PEM), and check that the endpoint's host name is the one in its certificate"
    )]
    Tls {
        /// The request.
        op: &'static str,
        /// `s3://bucket/key` of the request.
        resource: String,
        /// The endpoint URL.
        endpoint: String,
        /// What rustls said.
        reason: String,
    },
    /// After an upload, the store reports an object other than the one uploaded.
    #[error("{resource}: after the upload the store reports {problem}; the recording will be uploaded again")]
    Verify {
        /// `s3://bucket/key` of the object.
        resource: String,
        /// What differs.
        problem: String,
    },
    /// The store accepted a request but ignored something the configuration requires (e.g. it
    /// stored an object without the requested object lock).
    #[error("{resource}: {problem}")]
    Unsupported {
        /// `s3://bucket/key` of the object.
        resource: String,
        /// What the store did not do, and what to do about it.
        problem: String,
    },
    /// The store's answer could not be understood.
    #[error("{op} {resource}: unexpected answer from the store: {problem}")]
    Protocol {
        /// The request.
        op: &'static str,
        /// `s3://bucket/key` of the request.
        resource: String,
        /// What was wrong with it.
        problem: String,
    },
}

fn code_text(code: &str) -> String {
    if code.is_empty() { String::new() } else { format!(" {code}") }
}

fn message_text(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(" ({message})") }
}

/// What to tell the operator about an error status.
fn hint(status: u16, code: &str) -> &'static str {
    match code {
        "InvalidAccessKeyId" => {
            "the store does not know this access key: check the access key id (--s3-access-key, AWS_ACCESS_KEY_ID or the credentials file)"
        }
        "SignatureDoesNotMatch" => {
            "the secret key does not belong to this access key: check the secret key (AWS_SECRET_ACCESS_KEY or the credentials file)"
        }
        "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => {
            "the session token has expired or is invalid: provide fresh credentials and restart"
        }
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => {
            "these credentials may not use this bucket: grant them s3:PutObject, s3:GetObject and s3:ListBucket on it (and s3:PutObjectRetention for object lock)"
        }
        "NoSuchBucket" => "the bucket does not exist: create it, or fix the bucket name in the archive URL",
        "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => {
            "the bucket is in another region or behind another endpoint: set --s3-region / --s3-endpoint to the bucket's"
        }
        "RequestTimeTooSkewed" => "this machine's clock is too far off: synchronise it (NTP) and restart",
        "InvalidBucketState" | "ObjectLockConfigurationNotFoundError" => {
            "object lock needs a bucket created with object lock enabled: use such a bucket or turn object lock off"
        }
        "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequests" => {
            "the store asks to slow down: retrying with backoff, recordings stay queued"
        }
        "BadDigest" | "XAmzContentSHA256Mismatch" | "InvalidDigest" | "IncompleteBody" => {
            "the store received other bytes than were sent: the recording will be uploaded again"
        }
        _ => match status {
            401 | 403 => {
                "the store refused these credentials for this bucket: check the access key, the secret key and the bucket's permissions"
            }
            404 => "the bucket does not exist: create it, or fix the bucket name and the endpoint",
            408 | 429 => "retrying with backoff, recordings stay queued",
            500..=599 => "the store is in trouble: retrying with backoff, recordings stay queued",
            _ => {
                "the store refused the request: check the archive configuration (endpoint, region, addressing style, bucket)"
            }
        },
    }
}

impl S3Error {
    /// How the shipper should react; see the module documentation of [`S3Target`](super::S3Target).
    pub fn disposition(&self) -> Disposition {
        match self {
            S3Error::Status { status, code, .. } => status_disposition(*status, code),
            S3Error::Transport { .. } | S3Error::Protocol { .. } => Disposition::RetryTarget,
            S3Error::Tls { .. } | S3Error::Unsupported { .. } => Disposition::Permanent,
            S3Error::Verify { .. } => Disposition::RetryEntry,
        }
    }

    /// The HTTP status, if the store answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The S3 error code, if the store gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Status { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }
}

/// Error codes that retrying the whole target fixes: the store is busy or briefly broken.
const RETRY_TARGET_CODES: [&str; 9] = [
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeTooSkewedRetry",
];

/// Error codes that concern one upload only: retry that entry.
const RETRY_ENTRY_CODES: [&str; 9] = [
    "BadDigest",
    "XAmzContentSHA256Mismatch",
    "InvalidDigest",
    "IncompleteBody",
    "OperationAborted",
    "ConditionalRequestConflict",
    "PreconditionFailed",
    "NoSuchUpload",
    "InvalidPart",
];

fn status_disposition(status: u16, code: &str) -> Disposition {
    if RETRY_TARGET_CODES.contains(&code) {
        return Disposition::RetryTarget;
    }
    if RETRY_ENTRY_CODES.contains(&code) {
        return Disposition::RetryEntry;
    }
    match status {
        // Not implemented: the store lacks a feature the configuration asks for.
        501 => Disposition::Permanent,
        500..=599 | 408 | 429 => Disposition::RetryTarget,
        409 | 412 => Disposition::RetryEntry,
        _ => Disposition::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: &str) -> S3Error {
        S3Error::Status { op: "upload", resource: "s3://b/k".into(), status, code: code.into(), message: String::new() }
    }

    #[test]
    fn statuses_are_classified() {
        for (s, code) in
            [(500, ""), (502, ""), (503, "SlowDown"), (503, ""), (429, ""), (400, "RequestTimeout"), (408, "")]
        {
            assert_eq!(status(s, code).disposition(), Disposition::RetryTarget, "{s} {code}");
        }
        for (s, code) in [
            (400, "BadDigest"),
            (400, "XAmzContentSHA256Mismatch"),
            (409, "OperationAborted"),
            (412, ""),
            (404, "NoSuchUpload"),
        ] {
            assert_eq!(status(s, code).disposition(), Disposition::RetryEntry, "{s} {code}");
        }
        for (s, code) in [
            (403, "InvalidAccessKeyId"),
            (403, "SignatureDoesNotMatch"),
            (403, "AccessDenied"),
            (403, ""),
            (404, "NoSuchBucket"),
            (301, "PermanentRedirect"),
            (400, "InvalidRequest"),
            (501, "NotImplemented"),
        ] {
            assert_eq!(status(s, code).disposition(), Disposition::Permanent, "{s} {code}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = status(403, "SignatureDoesNotMatch");
        let text = e.to_string();
        assert!(text.contains("403 SignatureDoesNotMatch"), "{text}");
        assert!(text.contains("secret key"), "{text}");
        assert!(status(404, "NoSuchBucket").to_string().contains("create it"));
        let tls = S3Error::Tls {
            op: "upload",
            resource: "s3://b/k".into(),
            endpoint: "https://x".into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert_eq!(tls.disposition(), Disposition::Permanent);
        assert!(tls.to_string().contains("--s3-ca-file"));
    }
}
