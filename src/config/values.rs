//! Values with their own syntax, shared by the file and the command line: each parses from the
//! text a user writes and prints back the same way.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shipper::Retention;

/// `audio_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// RIFF/WAVE, 16-bit PCM.
    Wav,
    /// FLAC, lossless.
    Flac,
    /// RIFF/WAVE holding the G.711 codes as captured (µ-law or A-law, half the bytes of PCM)
    /// while a call is G.711 of one law; 16-bit PCM otherwise.
    #[serde(rename = "wav-g711")]
    #[value(name = "wav-g711")]
    WavG711,
}

/// `audio_layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AudioLayout {
    /// Caller in channel 0, callee in channel 1.
    Stereo,
    /// Both parties mixed into one channel.
    Mono,
    /// One mono file per party (`<name>.caller.wav`, `<name>.callee.wav`).
    Split,
}

/// S3 Object Lock mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LockModeArg {
    /// Nobody can delete or shorten the retention, not even the account's root user.
    Compliance,
    /// Users with s3:BypassGovernanceRetention can.
    Governance,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`, so that the file takes the
/// same text as the command line and errors carry the parser's message.
macro_rules! text_serde {
    ($t:ty, $expecting:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$t, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$t, E> {
                        self.visit_str(&v.to_string())
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

/// Local retention of shipped recordings: `keep`, `delete`, `days:N` or `watermark:P`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy(pub Retention);

impl FromStr for RetentionPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a retention policy: use keep, delete, days:N or watermark:PERCENT");
        let policy = match text.split_once(':') {
            None if text == "keep" => Retention::Keep,
            None if text == "delete" => Retention::DeleteWhenShipped,
            Some(("days", n)) => Retention::KeepDays(n.parse().map_err(|_| bad())?),
            Some(("watermark", p)) => match p.trim_end_matches('%').parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Retention::KeepUntilWatermark(p),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        };
        Ok(RetentionPolicy(policy))
    }
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Retention::DeleteWhenShipped => f.write_str("delete"),
            Retention::KeepDays(n) => write!(f, "days:{n}"),
            Retention::KeepUntilWatermark(p) => write!(f, "watermark:{p}"),
            _ => f.write_str("keep"),
        }
    }
}

text_serde!(RetentionPolicy, "a retention policy: keep, delete, days:N or watermark:PERCENT");

/// A rate in bytes per second: `500K`, `20M`, `1G` or a plain number (K = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim().trim_end_matches("/s").trim_end_matches(['B', 'b']);
        let (digits, unit) = match t.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
            _ => (t, ' '),
        };
        let n: f64 = digits.trim().parse().map_err(|_| format!("{text:?} is not a rate like 500K, 20M or 1G"))?;
        let scale = match unit {
            ' ' => 1.0,
            'K' => 1024.0,
            'M' => 1024.0 * 1024.0,
            'G' => 1024.0 * 1024.0 * 1024.0,
            _ => return Err(format!("{text:?}: unknown unit {unit:?}; use K, M or G")),
        };
        let rate = (n * scale) as u64;
        if rate == 0 {
            return Err("the bandwidth limit must be above zero".into());
        }
        Ok(Rate(rate))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, scale) in [("G", 1u64 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
            if n.is_multiple_of(scale) {
                return write!(f, "{}{unit}", n / scale);
            }
        }
        write!(f, "{n}")
    }
}

text_serde!(Rate, "a rate like \"500K\", \"20M\" or \"1G\" (bytes per second)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_retention_parse_and_print_back() {
        assert_eq!("500K".parse(), Ok(Rate(500 * 1024)));
        assert_eq!("20M".parse(), Ok(Rate(20 * 1024 * 1024)));
        assert_eq!("1048576".parse(), Ok(Rate(1_048_576)));
        assert!("fast".parse::<Rate>().is_err());
        assert!("0".parse::<Rate>().is_err());
        for text in ["500K", "20M", "1G", "1000"] {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }
        let policy = |t: &str| t.parse::<RetentionPolicy>().map(|p| p.0);
        assert_eq!(policy("keep"), Ok(Retention::Keep));
        assert_eq!(policy("delete"), Ok(Retention::DeleteWhenShipped));
        assert_eq!(policy("days:30"), Ok(Retention::KeepDays(30)));
        assert_eq!(policy("watermark:80%"), Ok(Retention::KeepUntilWatermark(80)));
        assert!(policy("watermark:0").is_err());
        assert!(policy("forever").is_err());
        for text in ["keep", "delete", "days:30", "watermark:80"] {
            assert_eq!(text.parse::<RetentionPolicy>().unwrap().to_string(), text);
        }
    }
}
