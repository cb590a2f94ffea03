//! The mixer's counters.

/// Mixer counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MixerStats {
    /// RTP packets received.
    pub rtp_packets: u64,
    /// RTP packets for a call the mixer does not know (should stay 0).
    pub rtp_orphans: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets (partly) too late for their place.
    pub late_packets: u64,
    /// Silence insertions that kept a party aligned with the other one (clock drift).
    pub slips: u64,
    /// Audio packets not recorded because their media is encrypted.
    pub encrypted_packets: u64,
    /// Packets of codecs that are not decoded.
    pub undecodable_packets: u64,
    /// SRTP packets verified and decrypted with SDES keys.
    pub srtp_decrypted: u64,
    /// SRTP packets that failed authentication (wrong key, tampering, a rollover counter that
    /// could not be followed): counted, never decoded.
    pub srtp_auth_failures: u64,
    /// SRTCP packets verified and decrypted.
    pub srtcp_decrypted: u64,
    /// SRTCP packets that failed authentication.
    pub srtcp_auth_failures: u64,
    /// Telephone-event and comfort-noise packets (silence in the recording).
    pub signal_packets: u64,
    /// Calls finished.
    pub calls_finished: u64,
    /// Calls finished with audio.
    pub recordings_with_audio: u64,
    /// Calls whose audio file could not be written (disk full, I/O error).
    pub write_errors: u64,
    /// Calls whose audio was not started, or stopped, because less than the free-space
    /// reserve was left (`MixerConfig::min_free_bytes`); counted in `write_errors` too.
    pub reserve_hits: u64,
}

impl MixerStats {
    /// Adds another mixer's counters to these.
    pub fn add(&mut self, o: &MixerStats) {
        self.rtp_packets += o.rtp_packets;
        self.rtp_orphans += o.rtp_orphans;
        self.duplicates += o.duplicates;
        self.late_packets += o.late_packets;
        self.slips += o.slips;
        self.encrypted_packets += o.encrypted_packets;
        self.undecodable_packets += o.undecodable_packets;
        self.srtp_decrypted += o.srtp_decrypted;
        self.srtp_auth_failures += o.srtp_auth_failures;
        self.srtcp_decrypted += o.srtcp_decrypted;
        self.srtcp_auth_failures += o.srtcp_auth_failures;
        self.signal_packets += o.signal_packets;
        self.calls_finished += o.calls_finished;
        self.recordings_with_audio += o.recordings_with_audio;
        self.write_errors += o.write_errors;
        self.reserve_hits += o.reserve_hits;
    }
}
