//! Seeded draws: which ranks regroup or move, at which call, and where a
//! checkpoint falls. A draw depends only on the seed, the case's name and
//! the call counts, so a failure is replayed with `FERRY_TEST_SEED`.

/// The seed of this run: `FERRY_TEST_SEED`, else the time.
pub fn seed() -> u64 {
    std::env::var("FERRY_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        })
}

/// A small, well-mixed generator (SplitMix64).
pub struct Draw(u64);

impl Draw {
    /// The generator of one case under `seed`.
    pub fn new(seed: u64, case: &str) -> Draw {
        // FNV-1a of the case's name, so that cases draw independently.
        let h = case.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        Draw(seed ^ h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One operation asked for by a SPEC: rank R after its K-th call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub rank: u32,
    pub after: u64,
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rank={},after={}", self.rank, self.after)
    }
}

/// `count` SPECs of random ranks, each within the first third of that
/// rank's calls (programs that poll make fewer calls in some runs).
pub fn specs(draw: &mut Draw, count: usize, calls: &[u64]) -> Vec<Spec> {
    (0..count)
        .map(|_| {
            let rank = draw.below(calls.len() as u64) as u32;
            let third = (calls[rank as usize] / 3).max(1);
            Spec {
                rank,
                after: draw.below(third) + 1,
            }
        })
        .collect()
}

/// The SPECs joined as the environment and `--migrate`/`--regroup` take
/// them.
pub fn joined(specs: &[Spec]) -> String {
    specs
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_replayable_and_in_range() {
        let calls = [300, 900, 3];
        let a = specs(&mut Draw::new(7, "migrate1::ring::mpich"), 20, &calls);
        let b = specs(&mut Draw::new(7, "migrate1::ring::mpich"), 20, &calls);
        assert_eq!(a, b);
        let c = specs(&mut Draw::new(7, "migrate1::ring::openmpi"), 20, &calls);
        assert_ne!(a, c);
        for s in &a {
            assert!(s.after >= 1 && s.after <= (calls[s.rank as usize] / 3).max(1));
        }
        assert_eq!(joined(&a[..2]), format!("{};{}", a[0], a[1]));
    }
}
