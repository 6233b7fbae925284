//! The keyword prefilter: every occurrence of every rule keyword, ASCII
//! case-insensitively, in one pass.
//!
//! A DFA step is a table lookup that depends on the previous step, so a
//! single scan is bound by memory latency, not throughput. Four slices of the
//! input are scanned in lockstep, their states kept in registers, so four
//! independent lookups are in flight: about three times faster than one
//! stream on source code.
use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{Anchored, BuildError, StartKind, dfa::DFA};

/// Independent streams scanned in lockstep.
const LANES: usize = 4;
/// Below this, one stream: lanes shorter than a keyword would mostly rescan
/// each other's bytes.
const MIN_LANE_INPUT: usize = 256;

pub struct Keywords {
    dfa: DFA,
    start: StateID,
}

impl Keywords {
    pub fn new(keywords: &[String]) -> Result<Self, BuildError> {
        // Without a prefilter only match states are special, so the hot loop
        // tests one comparison per lane and byte.
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .prefilter(false)
            .start_kind(StartKind::Unanchored)
            .build(keywords)?;
        // An empty automaton has no unanchored start; a dead start simply never matches.
        let start = dfa.start_state(Anchored::No).unwrap_or(StateID::ZERO);
        Ok(Self { dfa, start })
    }

    /// Calls `emit(keyword index, start offset)` for every occurrence,
    /// overlapping ones included, in no particular order.
    pub fn find(&self, data: &[u8], mut emit: impl FnMut(usize, usize)) {
        if data.len() < MIN_LANE_INPUT {
            self.resume(self.start, data, 0, 0, &mut emit);
            return;
        }
        // Lane k owns the matches that end in its quarter. It starts a
        // keyword's length early, so its state is right when its quarter begins.
        let reach = self.dfa.max_pattern_len().saturating_sub(1);
        let width = data.len().div_ceil(LANES);
        let owned: [usize; LANES] = std::array::from_fn(|k| k * width);
        let from: [usize; LANES] = owned.map(|start| start.saturating_sub(reach));
        let to: [usize; LANES] = std::array::from_fn(|k| ((k + 1) * width).min(data.len()));
        let common = (0..LANES).map(|k| to[k] - from[k]).min().unwrap_or(0);
        let mut state = [self.start; LANES];
        let lanes: [&[u8]; LANES] = std::array::from_fn(|k| &data[from[k]..from[k] + common]);
        let dfa = &self.dfa;
        for (i, (((&b0, &b1), &b2), &b3)) in lanes[0]
            .iter()
            .zip(lanes[1])
            .zip(lanes[2])
            .zip(lanes[3])
            .enumerate()
        {
            state[0] = dfa.next_state(Anchored::No, state[0], b0);
            state[1] = dfa.next_state(Anchored::No, state[1], b1);
            state[2] = dfa.next_state(Anchored::No, state[2], b2);
            state[3] = dfa.next_state(Anchored::No, state[3], b3);
            if state.iter().any(|&s| dfa.is_special(s)) {
                for k in 0..LANES {
                    self.report(state[k], from[k] + i + 1, owned[k], &mut emit);
                }
            }
        }
        for k in 0..LANES {
            let resume = from[k] + common;
            self.resume(state[k], &data[..to[k]], resume, owned[k], &mut emit);
        }
    }

    /// Continues one stream in `state` from `from` to the end of `data`,
    /// reporting matches that end after `owned`.
    fn resume(
        &self,
        mut state: StateID,
        data: &[u8],
        from: usize,
        owned: usize,
        emit: &mut impl FnMut(usize, usize),
    ) {
        for (pos, &byte) in data.iter().enumerate().skip(from) {
            state = self.dfa.next_state(Anchored::No, state, byte);
            if self.dfa.is_special(state) {
                self.report(state, pos + 1, owned, emit);
            }
        }
    }

    /// Reports the keywords of `state`, which ends at `end`, when the match
    /// ends past `owned` (earlier ones belong to the previous lane).
    fn report(
        &self,
        state: StateID,
        end: usize,
        owned: usize,
        emit: &mut impl FnMut(usize, usize),
    ) {
        if end <= owned || !self.dfa.is_match(state) {
            return;
        }
        for i in 0..self.dfa.match_len(state) {
            let pattern = self.dfa.match_pattern(state, i);
            emit(pattern.as_usize(), end - self.dfa.pattern_len(pattern));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::AhoCorasick;

    /// (keyword index, start) pairs.
    type Hits = Vec<(usize, usize)>;

    /// Our hits and the reference overlapping search's, both sorted.
    fn all(keywords: &[&str], data: &[u8]) -> (Hits, Hits) {
        let owned: Vec<String> = keywords.iter().map(|k| k.to_string()).collect();
        let mut ours = Vec::new();
        Keywords::new(&owned)
            .unwrap()
            .find(data, |p, s| ours.push((p, s)));
        let reference = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&owned)
            .unwrap();
        let mut expected: Vec<_> = reference
            .find_overlapping_iter(data)
            .map(|m| (m.pattern().as_usize(), m.start()))
            .collect();
        ours.sort_unstable();
        expected.sort_unstable();
        (ours, expected)
    }

    #[test]
    fn lanes_find_exactly_what_a_plain_scan_finds() {
        let keywords = ["password", "pass", "ghp_", "begin rsa private key", "a"];
        let mut data = Vec::new();
        let mut seed = 7u32;
        while data.len() < 50_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            match seed >> 28 {
                0 => data.extend_from_slice(b"PassWord"),
                1 => data.extend_from_slice(b"-----BEGIN RSA PRIVATE KEY-----"),
                2 => data.extend_from_slice(b"ghp_"),
                _ => data.push(b'x' + (seed >> 24) as u8 % 3),
            }
        }
        for len in [0, 1, 7, 255, 256, 300, 4095, 4096, 4097, 12_345, data.len()] {
            let (ours, expected) = all(&keywords, &data[..len]);
            assert_eq!(ours, expected, "input of {len} bytes");
        }
    }

    #[test]
    fn no_keywords_no_hits() {
        let (ours, _) = all(&[], b"anything at all");
        assert!(ours.is_empty());
    }
}
