//! A full local disk: the data directory is a small tmpfs that fills while recording. callvault
//! must say so (error log, exit status 3, summary), keep the audio that fits, ship what was
//! finished, and lose nothing silently: every call ends up in the archive, its record saying
//! where its audio stops and why. And a disk that fails writes (a loop-mounted image that
//! cannot grow): the failure reaches the fsync that would declare the audio durable.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use callgen::{CallSpec, Scenario, Truth};
use common::{Rec, records, skipped, text};

const T0: i64 = 1_735_689_600 * 1_000_000_000;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    fn new(dir: &Path, size: &str) -> Option<Mount> {
        let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        if !is_root {
            skipped("full-disk tests: need root to mount a small tmpfs");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status();
        if !ok.is_ok_and(|s| s.success()) {
            skipped("full-disk tests: mounting a tmpfs failed");
            return None;
        }
        Some(Mount(dir.to_owned()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).status().unwrap();
        assert!(ok.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Ten 20 s calls two seconds apart: about 6.4 MB of stereo audio, more than the disk holds.
fn ten_calls(dir: &Path) -> (std::path::PathBuf, Truth) {
    let calls: Vec<CallSpec> =
        (0..10).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 2_000_000_000, 20_000)).collect();
    let pcap = dir.join("calls.pcap");
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    (pcap, truth)
}

fn replay(data: &Path, archive: &Path, extra: &[&str], pcap: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callvault"))
        .args(["replay", "--quiet", "--output"])
        .arg(data)
        .arg("--archive")
        .arg(archive)
        .args(extra)
        .arg(pcap)
        .output()
        .unwrap()
}

/// Every archived record's audio matches its hash; a record without all of its audio says so.
fn check_records(recs: &[Rec], cause: &str, call_s: f64) -> f64 {
    let mut seconds = 0.0;
    for r in recs {
        if let Some(wav) = &r.wav {
            assert_eq!(r.value["audio"]["sha256"], common::sha256(wav), "{}", r.value);
            let [a, b] = common::channels(wav);
            assert_eq!(a.len() as u64, r.value["audio"]["frames"].as_u64().unwrap());
            assert_eq!(b.len(), a.len());
            seconds += r.value["audio"]["duration_s"].as_f64().unwrap();
        }
        let full = r.value["audio"]["duration_s"].as_f64().is_some_and(|d| d > call_s - 0.1);
        if !full {
            assert_eq!(r.value["capture_complete"], false, "{}", r.value);
            assert!(r.value["incomplete_reasons"].to_string().contains(cause), "{}", r.value);
        }
    }
    seconds
}

#[test]
fn the_free_space_reserve_keeps_every_call_record_and_the_audio_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_m) = Mount::new(&dir.path().join("data"), "4m") else { return };
    let (pcap, truth) = ten_calls(dir.path());
    let (data, archive) = (dir.path().join("data"), dir.path().join("archive"));
    let out = replay(&data, &archive, &["--min-free-mb", "1"], &pcap);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("disk nearly full"), "the cause is logged: {all}");
    assert!(all.contains("missing audio that could not be written"), "the summary says so: {all}");
    let recs = records(&archive);
    let mut ids: Vec<_> = recs.iter().map(|r| r.value["call_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    let mut want: Vec<_> = truth.calls.iter().map(|c| c.call_id.clone()).collect();
    want.sort();
    assert_eq!(ids, want, "every call has its record in the archive: {all}");
    let seconds = check_records(&recs, "the disk is full", 20.0);
    // 3 MiB usable at 32 kB/s: more than 60 s of the 200 s were kept, less than all of it.
    assert!(seconds > 60.0 && seconds < 199.0, "kept {seconds} s: {all}");
    assert!(recs.iter().any(|r| r.value["capture_complete"] == false));
    assert_eq!(std::fs::read_dir(data.join("work")).unwrap().count(), 0, "nothing left behind: {all}");
}

/// Two hundred calls starting together write their audio in lockstep, 64 KiB at a time: once
/// the reserve is reached none of them may write again (a write asks first), else the last
/// writes of all of them (12.5 MiB) would fill the disk under the reserve and leave records
/// unwritten. (The reserve must hold the calls' records and index rows, ~14 KB a call here.)
#[test]
fn the_reserve_holds_however_many_calls_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_m) = Mount::new(&dir.path().join("data"), "24m") else { return };
    let calls: Vec<CallSpec> = (0..200).map(|i| CallSpec::answered(i, T0 + i64::from(i) * 1_000_000, 10_000)).collect();
    let pcap = dir.path().join("calls.pcap");
    let truth = callgen::write_pcap(&Scenario::new(calls), &pcap).unwrap();
    let (data, archive) = (dir.path().join("data"), dir.path().join("archive"));
    let out = replay(&data, &archive, &["--min-free-mb", "6"], &pcap);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("disk nearly full"), "the cause is logged: {all}");
    assert!(!all.contains("No space left on device"), "no write met a full disk: {all}");
    let recs = records(&archive);
    assert_eq!(recs.len(), truth.calls.len(), "every call has its record in the archive: {all}");
    let seconds = check_records(&recs, "the disk is full", 10.0);
    // 18 MiB usable at 32 kB/s: a good part of the 2,000 s was kept, far from all of it.
    assert!(seconds > 300.0 && seconds < 800.0, "kept {seconds} s: {all}");
}

#[test]
fn a_disk_full_to_the_last_byte_loses_nothing_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(m) = Mount::new(&dir.path().join("data"), "2m") else { return };
    let (pcap, truth) = ten_calls(dir.path());
    let (data, archive) = (dir.path().join("data"), dir.path().join("archive"));
    // No reserve: writes fail with ENOSPC, records may not fit either.
    let out = replay(&data, &archive, &["--min-free-mb", "0"], &pcap);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(all.contains("No space left on device"), "the cause is named: {all}");
    // Space is freed; the next start recovers what the work directory kept, and records a
    // new, different call alongside.
    m.resize("256m");
    let later = dir.path().join("later.pcap");
    let extra = CallSpec::answered(42, T0 + 3_600_000_000_000, 2_000);
    let extra_id = extra.call_id.clone();
    callgen::write_pcap(&Scenario::new(vec![extra]), &later).unwrap();
    let out2 = replay(&data, &archive, &[], &later);
    let all2 = text(&out2);
    assert_eq!(out2.status.code(), Some(0), "{all}\n{all2}");
    let recs = records(&archive);
    let mut ids: Vec<_> = recs.iter().map(|r| r.value["call_id"].as_str().unwrap_or("?").to_owned()).collect();
    ids.sort();
    ids.dedup();
    // Every call with audio on disk is archived; a call whose record and audio both failed is
    // named in the first run's log.
    for c in &truth.calls {
        let archived = ids.contains(&c.call_id);
        assert!(archived || all.contains(&c.call_id), "{} is neither archived nor reported:\n{all}\n{all2}", c.call_id);
    }
    assert!(ids.contains(&extra_id));
    assert!(recs.iter().any(|r| r.wav.is_some() && r.value["call_id"] != extra_id.as_str()), "audio was kept: {all2}");
    for r in &recs {
        if let Some(wav) = &r.wav {
            assert_eq!(r.value["audio"]["sha256"], common::sha256(wav), "{}", r.value);
        }
    }
    assert_eq!(std::fs::read_dir(data.join("work")).unwrap().count(), 0, "nothing left behind: {all2}");
}

/// A loop-mounted ext4 (without a journal, as the disk of the machine these tests run on) whose
/// backing file sits in a tmpfs too small for it: once the tmpfs is full, every write that
/// reaches the disk fails. Unmounted (and its loop device freed) when dropped.
struct FailingDisk {
    mount: std::path::PathBuf,
    _backing: Mount,
}

impl FailingDisk {
    fn new(dir: &Path) -> Option<FailingDisk> {
        let backing = Mount::new(&dir.join("backing"), "24m")?;
        let image = dir.join("backing/disk.img");
        std::fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
        let made = Command::new("mkfs.ext4").args(["-q", "-F", "-O", "^has_journal"]).arg(&image).status();
        let mount = dir.join("disk");
        std::fs::create_dir_all(&mount).unwrap();
        let mounted = made.is_ok_and(|s| s.success())
            && Command::new("mount")
                .args(["-o", "loop,errors=continue"])
                .arg(&image)
                .arg(&mount)
                .status()
                .is_ok_and(|s| s.success());
        if !mounted {
            skipped("write-error test: making or loop-mounting an ext4 image failed (mkfs.ext4, loop devices)");
            return None;
        }
        // The tmpfs full: the image cannot grow any more.
        let mut fill = std::fs::File::create(dir.join("backing/fill")).unwrap();
        while std::io::Write::write_all(&mut fill, &[0; 1 << 16]).is_ok() {}
        Some(FailingDisk { mount, _backing: backing })
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// The disk fails the writes of a call's audio while the call goes on. Writeback started mid-call
/// (on a duplicate of the audio file's handle, by the writeback thread) must leave the error to
/// the finisher's fsync, the one that declares the audio durable: an `fdatasync` there took the
/// file's one error report and dropped it, and the finisher's fsync then succeeded on audio that
/// never reached the disk.
#[test]
fn a_write_error_during_mid_call_writeback_reaches_the_finishers_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = FailingDisk::new(dir.path()) else { return };
    let mut audio = std::fs::File::create_new(disk.mount.join("audio.wav")).unwrap();
    std::io::Write::write_all(&mut audio, &[0x55; 4 << 20]).unwrap();
    let handle = audio.try_clone().unwrap();
    // Queued or refused at once: either way the error must stay for the fsync below.
    let _ = mixer::mix::writeback::start(&handle);
    drop(handle);
    let err = audio.sync_all().expect_err("the failed writes are reported by the fsync after them");
    let errno = rustix::io::Errno::from_io_error(&err);
    assert!(matches!(errno, Some(rustix::io::Errno::IO | rustix::io::Errno::NOSPC)), "{err}");
}
