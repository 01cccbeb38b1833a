//! Telling the causes of a missed deadline apart: a miss is credited to a
//! registered [`StallSource`] only if that source's stalls, taken out of the
//! transaction's time, bring it within the deadline; what no source
//! explains is the host path's.

use std::sync::Arc;
use std::time::Duration;

use crate::stall::{StallSource, union_within};
use crate::time::Timestamp;

/// The stall sources a port consults, with the misses each explained.
#[derive(Debug, Default)]
pub(crate) struct Attribution {
    /// In registration order: the first source that alone explains a miss
    /// gets it (the simulated chip's own source is registered first).
    sources: Vec<(Arc<dyn StallSource>, u64)>,
}

impl Attribution {
    /// Consults `source` from now on.
    pub(crate) fn add(&mut self, source: Arc<dyn StallSource>) {
        self.sources.push((source, 0));
    }

    fn all(&self) -> impl Iterator<Item = &dyn StallSource> + '_ {
        self.sources.iter().map(|(source, _)| &**source)
    }

    /// How long, within `[from, to]`, any source was stalled (their union).
    pub(crate) fn stalled_within(
        &self,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
    ) -> Duration {
        union_within(self.all(), from, to, now)
    }

    /// Credits a miss whose reply took `late` from `submitted` against a
    /// `deadline`: to the first source whose stalls alone explain it, else,
    /// if all of them together explain it, to the one that stalled longest;
    /// otherwise to nobody (the host path). No allocation.
    pub(crate) fn explain(
        &mut self,
        submitted: Timestamp,
        late: Duration,
        deadline: Duration,
        now: Timestamp,
    ) {
        let to = submitted.add(late);
        let explains = |stalled: Duration| late.saturating_sub(stalled) <= deadline;
        let mut longest: Option<(usize, Duration)> = None;
        for (i, (source, _)) in self.sources.iter().enumerate() {
            let alone = union_within([&**source], submitted, to, now);
            if explains(alone) {
                self.sources[i].1 += 1;
                return;
            }
            if longest.is_none_or(|(_, t)| alone > t) {
                longest = Some((i, alone));
            }
        }
        if let Some((i, _)) = longest
            && explains(self.stalled_within(submitted, to, now))
        {
            self.sources[i].1 += 1;
        }
    }

    /// The misses each source explained, by name, in registration order.
    pub(crate) fn explained(&self) -> Vec<(String, u64)> {
        self.sources
            .iter()
            .map(|(source, n)| (source.name().to_string(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stall::StallLog;

    fn t(us: u64) -> Timestamp {
        Timestamp::from_nanos(us * 1000)
    }

    #[derive(Debug)]
    struct Source(&'static str, StallLog);

    impl Source {
        fn stalled(name: &'static str, from_us: u64, to_us: u64) -> Arc<Source> {
            let log = StallLog::new();
            log.record(t(from_us), t(to_us));
            Arc::new(Source(name, log))
        }
    }

    impl StallSource for Source {
        fn name(&self) -> &str {
            self.0
        }
        fn stalls_within(
            &self,
            from: Timestamp,
            to: Timestamp,
            now: Timestamp,
            each: &mut dyn FnMut(Timestamp, Timestamp),
        ) {
            self.1.for_each_within(from, to, now, each);
        }
    }

    const DEADLINE: Duration = Duration::from_micros(3500);
    const NOW: u64 = 1_000_000;

    /// A reply 6 ms late after a request at t = 10 ms, with these sources.
    fn credit(sources: &[Arc<Source>]) -> Vec<(String, u64)> {
        let mut a = Attribution::default();
        for s in sources {
            a.add(s.clone());
        }
        a.explain(t(10_000), Duration::from_millis(6), DEADLINE, t(NOW));
        a.explained()
    }

    fn named(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|&(n, c)| (n.to_string(), c)).collect()
    }

    #[test]
    fn a_source_whose_stall_alone_explains_the_miss_gets_it() {
        let chip = Source::stalled("simulated-chip", 11_000, 14_000); // 3 ms
        let machine = Source::stalled("machine", 30_000, 31_000); // outside
        assert_eq!(
            credit(&[chip, machine]),
            named(&[("simulated-chip", 1), ("machine", 0)])
        );
    }

    #[test]
    fn the_first_registered_source_wins_when_both_alone_explain() {
        let chip = Source::stalled("simulated-chip", 11_000, 14_000);
        let machine = Source::stalled("machine", 11_000, 14_000);
        assert_eq!(
            credit(&[chip, machine]),
            named(&[("simulated-chip", 1), ("machine", 0)])
        );
    }

    #[test]
    fn stalls_needed_together_credit_the_longer_one() {
        // 1.5 ms + 1.2 ms, neither alone enough (2.5 ms must go), both are.
        let chip = Source::stalled("simulated-chip", 11_000, 12_200);
        let machine = Source::stalled("machine", 13_000, 14_500);
        assert_eq!(
            credit(&[chip, machine]),
            named(&[("simulated-chip", 0), ("machine", 1)])
        );
    }

    #[test]
    fn what_no_stall_explains_is_the_host_paths() {
        // 2 ms of stalls in all, 2.5 ms needed; and one stall after the reply.
        let chip = Source::stalled("simulated-chip", 11_000, 12_000);
        let machine = Source::stalled("machine", 12_500, 13_500);
        let later = Source::stalled("later", 17_000, 20_000);
        assert_eq!(
            credit(&[chip, machine, later]),
            named(&[("simulated-chip", 0), ("machine", 0), ("later", 0)])
        );
        assert_eq!(credit(&[]), named(&[]));
    }
}
