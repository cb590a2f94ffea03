//! AWS Signature Version 4 for S3, with the `Authorization` header (not presigned URLs): the
//! canonical request, the string to sign, and the derived signing key, as in the AWS reference.
//! Checked against the published S3 example below.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Credentials;

/// SHA-256 of the empty payload, lowercase hex.
pub(crate) const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A request to sign: everything that goes into the canonical request.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    /// `GET`, `PUT`, ...
    pub(crate) method: &'a str,
    /// The `Host` header as sent (with `:port` when not the scheme's default).
    pub(crate) host: &'a str,
    /// The URI-encoded path, as sent.
    pub(crate) path: &'a str,
    /// Query parameters, not encoded.
    pub(crate) query: &'a [(String, String)],
    /// Headers other than `host`, `x-amz-date`, `x-amz-content-sha256` and the session token;
    /// names in lowercase. All of them are signed.
    pub(crate) headers: &'a [(String, String)],
    /// SHA-256 of the body, lowercase hex.
    pub(crate) payload_sha256: &'a str,
}

/// Signs `req` at `amz_date` (`YYYYMMDDTHHMMSSZ`) and returns every header to send besides the
/// request's own: `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` (if any) and
/// `authorization`.
pub(crate) fn sign(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    amz_date: &str,
) -> Vec<(&'static str, String)> {
    let mut headers: Vec<(String, String)> = req.headers.to_vec();
    headers.push(("host".into(), req.host.to_owned()));
    headers.push(("x-amz-date".into(), amz_date.to_owned()));
    headers.push(("x-amz-content-sha256".into(), req.payload_sha256.to_owned()));
    if let Some(token) = &creds.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed_headers = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");

    let mut query: Vec<(String, String)> =
        req.query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    query.sort();
    let canonical_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method, req.path, canonical_query, canonical_headers, signed_headers, req.payload_sha256
    );
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request)));
    let mut key = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), date.as_bytes());
    for part in [region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));

    let mut out = vec![("x-amz-date", amz_date.to_owned()), ("x-amz-content-sha256", req.payload_sha256.to_owned())];
    if let Some(token) = &creds.session_token {
        out.push(("x-amz-security-token", token.clone()));
    }
    out.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}",
            creds.access_key
        ),
    ));
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encodes everything but the unreserved characters `A-Z a-z 0-9 - . _ ~` (and `/` when
/// `keep_slash`), as SigV4 requires; S3 paths are encoded once.
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_creds() -> Credentials {
        Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None)
    }

    /// The "GET Object" example of the S3 SigV4 documentation (header-based authentication).
    #[test]
    fn matches_the_published_get_object_example() {
        let headers = [("range".to_owned(), "bytes=0-9".to_owned())];
        let req = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        };
        let out = sign(&req, &example_creds(), "us-east-1", "20130524T000000Z");
        let auth = &out.iter().find(|(k, _)| *k == "authorization").unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// The "GET Bucket (List Objects)" example: a query string.
    #[test]
    fn matches_the_published_list_objects_example() {
        let query = [("max-keys".to_owned(), "2".to_owned()), ("prefix".to_owned(), "J".to_owned())];
        let req = Request {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: &query,
            headers: &[],
            payload_sha256: EMPTY_SHA256,
        };
        let out = sign(&req, &example_creds(), "us-east-1", "20130524T000000Z");
        let auth = &out.iter().find(|(k, _)| *k == "authorization").unwrap().1;
        assert!(auth.ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"), "{auth}");
    }

    #[test]
    fn session_token_is_signed_and_sent() {
        let creds = Credentials::new("AK", "SK", Some("TOKEN".into()));
        let req =
            Request { method: "HEAD", host: "h", path: "/b/k", query: &[], headers: &[], payload_sha256: EMPTY_SHA256 };
        let out = sign(&req, &creds, "us-east-1", "20130524T000000Z");
        assert!(out.iter().any(|(k, v)| *k == "x-amz-security-token" && v == "TOKEN"));
        let auth = &out.iter().find(|(k, _)| *k == "authorization").unwrap().1;
        assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"), "{auth}");
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(uri_encode("a b/c~d+e", true), "a%20b/c~d%2Be");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("é", false), "%C3%A9");
    }
}
