//! The watcher's decisions, as a state machine with no I/O and no clock.
//!
//! [`Machine::step`] takes the time and one [`Input`] (an event, a timer, or the result
//! of an effect it asked for) and returns the [`Effect`]s to perform. The thread in
//! `mod.rs` performs them and feeds their results back. Everything a watcher decides —
//! the quiet period, waiting for writers, a missing directory, a recreated directory,
//! the kubelet-volume flag, overflow, the periodic rescan, deduplication by digest — is
//! here, so it is unit-tested below without inotify and without sleeping.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::classify::{Observed, Reaction, WriteActivity};
use super::{Change, WatchEvent, WatchOptions};
use crate::read::{Layout, SnapshotError};
use crate::snapshot::Snapshot;

/// A burst of writes to a plain directory may postpone the read at most this many quiet
/// periods, so that a writer that never stops cannot starve the reader.
const MAX_QUIET_PERIODS: u32 = 10;

/// How long a file that is open for writing (modified, not yet closed) may hold back a
/// read. A writer that keeps a file open for longer is read anyway: a slow writer must
/// not hide every other change.
const MAX_OPEN_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Device and inode of the watched directory: a directory recreated at the same path is
/// a different one, and its watch must be set up again.
pub(crate) type Identity = (u64, u64);

/// What the machine is told.
#[derive(Debug)]
pub(crate) enum Input {
    /// The watcher starts.
    Start,
    /// Result of [`Effect::Look`]: what is at the path now.
    Looked(Option<Looked>),
    /// Result of [`Effect::StartInotify`]: `Err` holds why inotify cannot be used.
    InotifyStarted(Result<(), String>),
    /// Result of [`Effect::Read`].
    Read(Result<(Snapshot, Layout), SnapshotError>),
    /// A filesystem event, classified.
    Event(Observed),
    /// inotify itself failed (a watch could not be added, the queue could not be read).
    InotifyFailed(String),
    /// The owner asked for a re-read.
    Rescan,
    /// Time passed: the deadline from [`Machine::next_wake`] may have come.
    Wake,
}

/// A directory found at the watched path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Looked {
    pub(crate) identity: Identity,
    /// Whether `..data` is there: a kubelet volume changes only through it, so watching
    /// the root alone is enough.
    pub(crate) has_data_link: bool,
}

/// What the machine asks its driver to do.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Stat the watched path; answer with [`Input::Looked`].
    Look,
    /// Drop any inotify watch and start one on the directory; answer with
    /// [`Input::InotifyStarted`].
    StartInotify { recursive: bool },
    /// Drop the inotify watch, if any.
    StopInotify,
    /// Read the directory; answer with [`Input::Read`].
    Read,
    /// Tell the handler.
    Report(WatchEvent),
}

/// Where knowledge of the directory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The directory is not there: look for it every poll interval.
    Missing,
    /// Waiting for the answer to a look (`None`) or to starting inotify on the directory
    /// with this identity.
    Establishing(Option<Identity>),
    /// inotify on the directory with this identity.
    Inotify(Identity),
    /// inotify unavailable or not wanted: read every poll interval.
    Polling,
}

/// Events seen that call for a read once the writer is done.
#[derive(Debug)]
struct Pending {
    first_event: Instant,
    last_event: Instant,
    /// Files modified and not yet closed.
    open_writes: HashSet<PathBuf>,
}

#[derive(Debug)]
pub(crate) struct Machine {
    dir: PathBuf,
    quiet_period: Duration,
    rescan_interval: Duration,
    poll_interval: Duration,
    force_polling: bool,
    source: Source,
    /// Whether the directory has been seen as a kubelet volume (with `..data`).
    kubelet_volume: bool,
    last: Option<Arc<Snapshot>>,
    last_error: Option<String>,
    /// Whether the current absence of the directory was reported already.
    missing_reported: bool,
    ready: bool,
    pending: Option<Pending>,
    next_tick: Option<Instant>,
}

impl Machine {
    pub(crate) fn new(dir: PathBuf, options: &WatchOptions) -> Machine {
        Machine {
            dir,
            quiet_period: options.quiet_period,
            rescan_interval: options.rescan_interval,
            poll_interval: options.poll_interval,
            force_polling: options.force_polling,
            source: Source::Establishing(None),
            kubelet_volume: false,
            last: None,
            last_error: None,
            missing_reported: false,
            ready: false,
            pending: None,
            next_tick: None,
        }
    }

    /// True once the directory has been read successfully.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// When the machine wants an [`Input::Wake`] at the latest.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|p| self.read_deadline(p));
        match (pending, self.next_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn step(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        match input {
            Input::Start => vec![Effect::Look],
            Input::Looked(found) => self.on_looked(now, found),
            Input::InotifyStarted(result) => self.on_inotify_started(now, result),
            Input::Read(result) => self.on_read(now, result),
            Input::Event(observed) => self.on_event(now, observed),
            Input::InotifyFailed(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "inotify error; re-establishing the watch");
                self.reestablish()
            }
            Input::Rescan => self.read_now(),
            Input::Wake => self.on_wake(now),
        }
    }

    /// The watch is dead (root deleted or moved, inotify error): set up a new one for
    /// whatever is at the path, even if its identity looks the same (inode numbers are
    /// reused), which leaving the `Inotify` source guarantees.
    fn reestablish(&mut self) -> Vec<Effect> {
        self.source = Source::Establishing(None);
        self.next_tick = None;
        vec![Effect::Look]
    }

    fn on_looked(&mut self, now: Instant, found: Option<Looked>) -> Vec<Effect> {
        let Some(found) = found else {
            return self.go_missing(now);
        };
        if self.missing_reported {
            tracing::info!(dir = %self.dir.display(), "directory appeared");
        }
        self.missing_reported = false;
        // The periodic check of a live watch: same directory, so the watch still holds.
        if self.source == Source::Inotify(found.identity) {
            self.schedule_tick(now);
            return self.read_now();
        }
        if self.force_polling {
            self.source = Source::Polling;
            self.schedule_tick(now);
            return self.read_now();
        }
        self.source = Source::Establishing(Some(found.identity));
        vec![Effect::StartInotify {
            recursive: !found.has_data_link,
        }]
    }

    fn on_inotify_started(&mut self, now: Instant, result: Result<(), String>) -> Vec<Effect> {
        let Source::Establishing(identity) = self.source else {
            // An answer nobody waits for any more (the directory went missing meanwhile).
            return vec![Effect::StopInotify];
        };
        let mut effects = Vec::new();
        match (result, identity) {
            (Ok(()), Some(identity)) => self.source = Source::Inotify(identity),
            (Ok(()), None) => {
                // Not asked for: nothing to attach the watch to. Cannot happen; be safe.
                effects.push(Effect::StopInotify);
                self.source = Source::Polling;
            }
            (Err(reason), _) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    %reason,
                    poll_interval = ?self.poll_interval,
                    "inotify unavailable; falling back to polling"
                );
                effects.push(Effect::Report(WatchEvent::Polling {
                    dir: self.dir.clone(),
                    reason,
                }));
                self.source = Source::Polling;
            }
        }
        self.schedule_tick(now);
        effects.extend(self.read_now());
        effects
    }

    fn go_missing(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if matches!(self.source, Source::Inotify(_)) {
            effects.push(Effect::StopInotify);
        }
        if !self.missing_reported {
            tracing::info!(dir = %self.dir.display(), "directory missing; waiting for it");
            effects.push(Effect::Report(WatchEvent::Missing {
                dir: self.dir.clone(),
            }));
            self.missing_reported = true;
        }
        self.source = Source::Missing;
        self.pending = None;
        self.schedule_tick(now);
        effects
    }

    fn on_event(&mut self, now: Instant, observed: Observed) -> Vec<Effect> {
        if matches!(self.source, Source::Missing) {
            // A stray event from a watch being torn down; the look for the directory
            // brings it back.
            return Vec::new();
        }
        match observed.reaction {
            Reaction::Ignore => Vec::new(),
            Reaction::ReadSoon => {
                let pending = self.pending.get_or_insert_with(|| Pending {
                    first_event: now,
                    last_event: now,
                    open_writes: HashSet::new(),
                });
                pending.last_event = now;
                match observed.write {
                    Some(WriteActivity::Writing(path)) => {
                        pending.open_writes.insert(path);
                    }
                    Some(WriteActivity::Finished(path)) => {
                        pending.open_writes.remove(&path);
                    }
                    None => {}
                }
                Vec::new()
            }
            Reaction::ReadNow => self.read_now(),
            Reaction::Rescan => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    "inotify queue overflowed, events were lost; re-reading the directory"
                );
                self.read_now()
            }
            Reaction::RootGone => self.reestablish(),
        }
    }

    fn on_wake(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(pending) = &self.pending
            && self.read_deadline(pending) <= now
        {
            effects.extend(self.read_now());
        }
        if self.next_tick.is_some_and(|tick| tick <= now) {
            effects.extend(self.tick(now));
        }
        effects
    }

    /// When a pending read happens: after a quiet period with no event, bounded so a
    /// writer that never pauses cannot starve it; later while a file is open for
    /// writing, bounded too.
    fn read_deadline(&self, pending: &Pending) -> Instant {
        let quiet = (pending.last_event + self.quiet_period)
            .min(pending.first_event + self.quiet_period * MAX_QUIET_PERIODS);
        if pending.open_writes.is_empty() {
            quiet
        } else {
            quiet.max(pending.first_event + MAX_OPEN_WRITE_WAIT)
        }
    }

    /// The periodic pass: the safety-net rescan, a poll, or a look for the directory.
    fn tick(&mut self, now: Instant) -> Vec<Effect> {
        match self.source {
            // Inotify: check first that the watch is still on the directory at the path.
            Source::Missing | Source::Inotify(_) => {
                self.next_tick = None;
                vec![Effect::Look]
            }
            Source::Polling => {
                self.schedule_tick(now);
                self.read_now()
            }
            Source::Establishing(_) => Vec::new(),
        }
    }

    fn schedule_tick(&mut self, now: Instant) {
        let interval = match self.source {
            Source::Inotify(_) => self.rescan_interval,
            Source::Polling | Source::Missing | Source::Establishing(_) => self.poll_interval,
        };
        self.next_tick = Some(now + interval);
    }

    fn read_now(&mut self) -> Vec<Effect> {
        self.pending = None;
        match self.source {
            Source::Inotify(_) | Source::Polling => vec![Effect::Read],
            // Nothing to read yet; the look under way ends in a read.
            Source::Missing | Source::Establishing(_) => Vec::new(),
        }
    }

    fn on_read(
        &mut self,
        now: Instant,
        result: Result<(Snapshot, Layout), SnapshotError>,
    ) -> Vec<Effect> {
        let (snapshot, layout) = match result {
            Ok(read) => read,
            Err(error) if error.is_missing() => return self.go_missing(now),
            Err(error) => return self.read_failed(error),
        };
        match layout {
            Layout::Kubelet => self.kubelet_volume = true,
            // A kubelet volume always has `..data`, even for an empty ConfigMap. Once
            // seen, a read without it is the volume being set up (created empty, not yet
            // written) or torn down: not content to report. The `..data` that follows
            // brings the next read. The read itself decided the layout, so `..data`
            // appearing just after it cannot mislabel what was read.
            Layout::Plain if self.kubelet_volume => {
                tracing::debug!(dir = %self.dir.display(), "volume without ..data (being set up or torn down); waiting");
                return Vec::new();
            }
            Layout::Plain => {}
        }
        self.last_error = None;
        self.ready = true;
        if self
            .last
            .as_ref()
            .is_some_and(|last| last.digest() == snapshot.digest())
        {
            return Vec::new();
        }
        let snapshot = Arc::new(snapshot);
        let previous = self.last.replace(snapshot.clone());
        vec![Effect::Report(WatchEvent::Changed(Change {
            dir: self.dir.clone(),
            snapshot,
            previous,
        }))]
    }

    fn read_failed(&mut self, error: SnapshotError) -> Vec<Effect> {
        let text = error.to_string();
        if self.last_error.as_deref() == Some(text.as_str()) {
            return Vec::new();
        }
        tracing::warn!(dir = %self.dir.display(), %error, "cannot read directory; keeping the last snapshot");
        self.last_error = Some(text);
        vec![Effect::Report(WatchEvent::Failed {
            dir: self.dir.clone(),
            error: Arc::new(error),
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const QUIET: Duration = Duration::from_millis(100);
    const RESCAN: Duration = Duration::from_secs(60);
    const POLL: Duration = Duration::from_secs(1);
    const DIR: &str = "/etc/config";

    fn mk_machine() -> Machine {
        mk_machine_with(false)
    }

    fn mk_machine_with(force_polling: bool) -> Machine {
        let options = WatchOptions {
            quiet_period: QUIET,
            rescan_interval: RESCAN,
            poll_interval: POLL,
            force_polling,
            ..WatchOptions::default()
        };
        Machine::new(PathBuf::from(DIR), &options)
    }

    fn mk_looked(inode: u64, has_data_link: bool) -> Input {
        Input::Looked(Some(Looked {
            identity: (1, inode),
            has_data_link,
        }))
    }

    fn mk_read(layout: Layout, entries: &[(&str, &str)]) -> Input {
        let snapshot = Snapshot::from_entries(entries.iter().map(|(k, v)| (*k, *v)));
        Input::Read(Ok((snapshot, layout)))
    }

    fn mk_event(reaction: Reaction, write: Option<WriteActivity>) -> Input {
        Input::Event(Observed { reaction, write })
    }

    fn writing(path: &str) -> Option<WriteActivity> {
        Some(WriteActivity::Writing(Path::new(DIR).join(path)))
    }

    fn finished(path: &str) -> Option<WriteActivity> {
        Some(WriteActivity::Finished(Path::new(DIR).join(path)))
    }

    /// A machine watching a plain directory through inotify, first read done.
    fn mk_watching(t0: Instant, layout: Layout) -> Machine {
        let mut m = mk_machine();
        m.step(t0, Input::Start);
        m.step(t0, mk_looked(7, layout == Layout::Kubelet));
        m.step(t0, Input::InotifyStarted(Ok(())));
        m.step(t0, mk_read(layout, &[("k", "1")]));
        m
    }

    fn is_read(effects: &[Effect]) -> bool {
        effects.iter().any(|e| matches!(e, Effect::Read))
    }

    fn changes(effects: &[Effect]) -> Vec<&Change> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Report(WatchEvent::Changed(change)) => Some(change),
                _ => None,
            })
            .collect()
    }

    fn count_reports(effects: &[Effect], what: fn(&WatchEvent) -> bool) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Report(event) if what(event)))
            .count()
    }

    #[test]
    fn start_watches_then_reads_and_reports_the_first_content() {
        let t0 = Instant::now();
        let mut m = mk_machine();
        assert!(matches!(m.step(t0, Input::Start)[..], [Effect::Look]));
        let effects = m.step(t0, mk_looked(7, false));
        assert!(
            matches!(effects[..], [Effect::StartInotify { recursive: true }]),
            "a plain directory is watched recursively: {effects:?}"
        );
        assert!(is_read(&m.step(t0, Input::InotifyStarted(Ok(())))));
        assert!(!m.is_ready());
        let effects = m.step(t0, mk_read(Layout::Plain, &[("k", "1")]));
        let reported = changes(&effects);
        assert_eq!(reported.len(), 1);
        assert!(reported[0].previous.is_none());
        assert!(m.is_ready());
        assert_eq!(m.next_wake(), Some(t0 + RESCAN));
    }

    #[test]
    fn a_kubelet_volume_is_watched_at_its_root_only() {
        let t0 = Instant::now();
        let mut m = mk_machine();
        m.step(t0, Input::Start);
        let effects = m.step(t0, mk_looked(7, true));
        assert!(matches!(
            effects[..],
            [Effect::StartInotify { recursive: false }]
        ));
    }

    #[test]
    fn only_a_new_digest_is_a_change() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        assert!(changes(&m.step(t0, mk_read(Layout::Plain, &[("k", "1")]))).is_empty());
        let effects = m.step(t0, mk_read(Layout::Plain, &[("k", "2")]));
        let reported = changes(&effects);
        assert_eq!(reported.len(), 1);
        let previous = reported[0].previous.as_ref().expect("previous");
        assert_eq!(previous.get("k"), Some(b"1".as_slice()));
    }

    #[test]
    fn a_kubelet_volume_read_without_data_link_is_not_content() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Kubelet);
        // Set up again or torn down: the read found no `..data`, so what it read (empty)
        // is not the ConfigMap, whatever appeared after the read.
        assert!(changes(&m.step(t0, mk_read(Layout::Plain, &[]))).is_empty());
        let effects = m.step(t0, mk_read(Layout::Kubelet, &[("k", "2")]));
        assert_eq!(changes(&effects).len(), 1);
    }

    #[test]
    fn plain_writes_wait_for_a_quiet_period() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        assert!(m.step(t0, mk_event(Reaction::ReadSoon, None)).is_empty());
        assert_eq!(m.next_wake(), Some(t0 + QUIET));
        let t1 = t0 + Duration::from_millis(60);
        m.step(t1, mk_event(Reaction::ReadSoon, None));
        assert!(
            !is_read(&m.step(t0 + QUIET, Input::Wake)),
            "postponed by the second event"
        );
        assert_eq!(m.next_wake(), Some(t1 + QUIET));
        assert!(is_read(&m.step(t1 + QUIET, Input::Wake)));
        // The read cleared the pending state: the rescan is next.
        assert_eq!(m.next_wake(), Some(t0 + RESCAN));
    }

    #[test]
    fn a_writer_that_never_pauses_cannot_starve_the_reader() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        let step = Duration::from_millis(50);
        let mut now = t0;
        let mut read_at = None;
        for _ in 0..100 {
            if is_read(&m.step(now, mk_event(Reaction::ReadSoon, None))) {
                read_at = Some(now);
                break;
            }
            now += step;
            if is_read(&m.step(now, Input::Wake)) {
                read_at = Some(now);
                break;
            }
        }
        assert_eq!(read_at, Some(t0 + QUIET * MAX_QUIET_PERIODS));
    }

    #[test]
    fn a_file_open_for_writing_holds_the_read_until_it_is_closed() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        m.step(t0, mk_event(Reaction::ReadSoon, writing("app.conf")));
        // The writer pauses mid-file for longer than the quiet period: no read.
        let paused = t0 + QUIET * 3;
        assert!(!is_read(&m.step(paused, Input::Wake)));
        m.step(paused, mk_event(Reaction::ReadSoon, finished("app.conf")));
        assert_eq!(m.next_wake(), Some(paused + QUIET));
        assert!(is_read(&m.step(paused + QUIET, Input::Wake)));
    }

    #[test]
    fn a_file_never_closed_is_read_after_a_bound() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        m.step(t0, mk_event(Reaction::ReadSoon, writing("log")));
        assert_eq!(m.next_wake(), Some(t0 + MAX_OPEN_WRITE_WAIT));
        assert!(!is_read(
            &m.step(t0 + QUIET * MAX_QUIET_PERIODS, Input::Wake)
        ));
        assert!(is_read(&m.step(t0 + MAX_OPEN_WRITE_WAIT, Input::Wake)));
    }

    #[test]
    fn data_swap_and_overflow_read_at_once() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Kubelet);
        assert!(is_read(&m.step(t0, mk_event(Reaction::ReadNow, None))));
        assert!(is_read(&m.step(t0, mk_event(Reaction::Rescan, None))));
        assert!(m.step(t0, mk_event(Reaction::Ignore, None)).is_empty());
    }

    #[test]
    fn the_rescan_checks_the_watch_then_reads() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        let t1 = t0 + RESCAN;
        assert!(matches!(m.step(t1, Input::Wake)[..], [Effect::Look]));
        // Same directory: the watch holds, read and schedule the next rescan.
        assert!(is_read(&m.step(t1, mk_looked(7, false))));
        assert_eq!(m.next_wake(), Some(t1 + RESCAN));
        // A different directory at the path (recreated between two rescans): new watch.
        let t2 = t1 + RESCAN;
        m.step(t2, Input::Wake);
        let effects = m.step(t2, mk_looked(8, false));
        assert!(
            matches!(effects[..], [Effect::StartInotify { .. }]),
            "{effects:?}"
        );
    }

    #[test]
    fn a_lost_root_is_watched_again_even_with_a_reused_inode() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        assert!(matches!(
            m.step(t0, mk_event(Reaction::RootGone, None))[..],
            [Effect::Look]
        ));
        // The recreated directory got the old inode number back.
        let effects = m.step(t0, mk_looked(7, false));
        assert!(
            matches!(effects[..], [Effect::StartInotify { .. }]),
            "{effects:?}"
        );
        assert!(is_read(&m.step(t0, Input::InotifyStarted(Ok(())))));
        // Same after an inotify error.
        assert!(matches!(
            m.step(t0, Input::InotifyFailed("queue read failed".into()))[..],
            [Effect::Look]
        ));
        assert!(matches!(
            m.step(t0, mk_looked(7, false))[..],
            [Effect::StartInotify { .. }]
        ));
    }

    #[test]
    fn a_missing_directory_is_reported_once_and_looked_for() {
        let t0 = Instant::now();
        let mut m = mk_machine();
        m.step(t0, Input::Start);
        let effects = m.step(t0, Input::Looked(None));
        assert_eq!(
            count_reports(&effects, |e| matches!(e, WatchEvent::Missing { .. })),
            1
        );
        assert_eq!(m.next_wake(), Some(t0 + POLL));
        let t1 = t0 + POLL;
        assert!(matches!(m.step(t1, Input::Wake)[..], [Effect::Look]));
        assert!(m.step(t1, Input::Looked(None)).is_empty(), "reported once");
        // Events of a torn-down watch change nothing.
        assert!(m.step(t1, mk_event(Reaction::ReadNow, None)).is_empty());
        let t2 = t1 + POLL;
        m.step(t2, Input::Wake);
        assert!(matches!(
            m.step(t2, mk_looked(9, false))[..],
            [Effect::StartInotify { .. }]
        ));
    }

    #[test]
    fn a_read_finding_the_directory_gone_stops_the_watch() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        let gone = SnapshotError::Missing {
            dir: PathBuf::from(DIR),
        };
        let effects = m.step(t0, Input::Read(Err(gone)));
        assert!(matches!(effects[0], Effect::StopInotify));
        assert_eq!(
            count_reports(&effects, |e| matches!(e, WatchEvent::Missing { .. })),
            1
        );
    }

    #[test]
    fn read_failures_are_reported_once_until_a_read_succeeds() {
        let t0 = Instant::now();
        let mut m = mk_watching(t0, Layout::Plain);
        let failure = || {
            Input::Read(Err(SnapshotError::NotADirectory {
                dir: PathBuf::from(DIR),
            }))
        };
        let failed = |e: &WatchEvent| matches!(e, WatchEvent::Failed { .. });
        assert_eq!(count_reports(&m.step(t0, failure()), failed), 1);
        assert_eq!(count_reports(&m.step(t0, failure()), failed), 0);
        m.step(t0, mk_read(Layout::Plain, &[("k", "1")]));
        assert_eq!(count_reports(&m.step(t0, failure()), failed), 1);
    }

    #[test]
    fn without_inotify_the_directory_is_polled() {
        let t0 = Instant::now();
        let mut m = mk_machine();
        m.step(t0, Input::Start);
        m.step(t0, mk_looked(7, false));
        let effects = m.step(t0, Input::InotifyStarted(Err("limit reached".into())));
        assert_eq!(
            count_reports(&effects, |e| matches!(e, WatchEvent::Polling { .. })),
            1
        );
        assert!(is_read(&effects));
        assert_eq!(m.next_wake(), Some(t0 + POLL));
        assert!(is_read(&m.step(t0 + POLL, Input::Wake)));
        assert_eq!(m.next_wake(), Some(t0 + POLL * 2));

        let mut forced = mk_machine_with(true);
        forced.step(t0, Input::Start);
        assert!(
            is_read(&forced.step(t0, mk_looked(7, false))),
            "no inotify asked for"
        );
    }
}
