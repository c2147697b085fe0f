//! The seed's four UX experiments, and the one random source they all draw from.
//!
//! - identity drift: a presented display name occasionally shows a cosmetic variant;
//! - latency illusion: each `message` push waits a random delay in a range;
//! - artistic chronology: a history page occasionally swaps adjacent messages close in time;
//! - phantom typing: the scheduler occasionally shows a recent partner typing.
//!
//! An experiment changes what a client sees, never what is stored: every function here takes
//! a view and returns a view. With `CHAT_EXPERIMENTS=off` none fires. `CHAT_RNG_SEED` seeds
//! the generator, so a sequence of decisions is reproducible.

use std::sync::Mutex;
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::config::ExperimentsConfig;

#[derive(Debug)]
pub struct Experiments {
    config: ExperimentsConfig,
    rng: Mutex<StdRng>,
}

impl Experiments {
    pub fn new(config: &ExperimentsConfig) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            config: config.clone(),
            rng: Mutex::new(rng),
        }
    }

    pub fn config(&self) -> &ExperimentsConfig {
        &self.config
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-draw; the generator is
        // still a generator.
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut rng)
    }

    fn chance(&self, rate: f64) -> bool {
        self.config.enabled && rate > 0.0 && self.with_rng(|r| r.random_bool(rate.min(1.0)))
    }

    /// Identity drift: the name to present this time. Never changes the stored name.
    pub fn present_name(&self, name: &str) -> String {
        if !self.chance(self.config.identity_drift_rate) {
            return name.to_owned();
        }
        let variants = cosmetic_variants(name);
        if variants.is_empty() {
            return name.to_owned();
        }
        let pick = self.with_rng(|r| r.random_range(0..variants.len()));
        variants[pick].clone()
    }

    /// Latency illusion: how long to hold a `message` push back. `None` when off.
    pub fn delivery_delay(&self) -> Option<Duration> {
        if !self.config.enabled || !self.config.latency_enabled {
            return None;
        }
        let (lo, hi) = (self.config.latency_min, self.config.latency_max);
        if hi.is_zero() {
            return None;
        }
        let ms = self.with_rng(|r| r.random_range(lo.as_millis() as u64..=hi.as_millis() as u64));
        Some(Duration::from_millis(ms))
    }

    /// Artistic chronology: maybe swap one or two adjacent pairs whose times lie within the
    /// window. `times` are the items' creation times in milliseconds, in strict order; the
    /// returned permutation holds every index exactly once.
    pub fn chronology(&self, times: &[i64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..times.len()).collect();
        if !self.chance(self.config.chronology_rate) {
            return order;
        }
        let window = self.config.chronology_window.as_millis() as i64;
        let candidates: Vec<usize> = (0..times.len().saturating_sub(1))
            .filter(|&i| (times[i + 1] - times[i]).abs() <= window)
            .collect();
        if candidates.is_empty() {
            return order;
        }
        let swaps = self.with_rng(|r| r.random_range(1..=2usize));
        let mut used: Vec<usize> = Vec::new();
        for _ in 0..swaps {
            let free: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|i| !used.iter().any(|u| u.abs_diff(*i) <= 1))
                .collect();
            if free.is_empty() {
                break;
            }
            let i = free[self.with_rng(|r| r.random_range(0..free.len()))];
            order.swap(i, i + 1);
            used.push(i);
        }
        order
    }

    /// Phantom typing: whether to show one now, and from which of `partners`.
    pub fn phantom_typing<'a, T>(&self, partners: &'a [T]) -> Option<&'a T> {
        if partners.is_empty()
            || !self.config.phantom_typing_enabled
            || !self.chance(self.config.phantom_typing_rate)
        {
            return None;
        }
        let i = self.with_rng(|r| r.random_range(0..partners.len()));
        partners.get(i)
    }
}

/// Cosmetic variants of a name: same letters, different dress. Never the name itself.
fn cosmetic_variants(name: &str) -> Vec<String> {
    let mut out = vec![
        name.to_lowercase(),
        name.to_uppercase(),
        format!("{name}."),
        format!("~{name}"),
    ];
    if let Some(last) = name.chars().last().filter(|c| c.is_alphabetic()) {
        out.push(format!("{name}{last}"));
    }
    let mut chars = name.chars();
    if let Some(first) = chars.next() {
        let flipped: String = if first.is_uppercase() {
            first.to_lowercase().collect()
        } else {
            first.to_uppercase().collect()
        };
        out.push(format!("{flipped}{}", chars.as_str()));
    }
    out.retain(|v| v != name && v.chars().count() <= 66);
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(seed: u64) -> ExperimentsConfig {
        ExperimentsConfig {
            enabled: true,
            seed: Some(seed),
            identity_drift_rate: 0.01,
            latency_enabled: true,
            latency_min: Duration::from_millis(40),
            latency_max: Duration::from_millis(250),
            chronology_rate: 0.05,
            chronology_window: Duration::from_millis(2000),
            phantom_typing_enabled: true,
            phantom_typing_rate: 0.05,
            phantom_typing_duration: Duration::from_millis(1500),
        }
    }

    /// Within 5 standard deviations of the expected count of a binomial.
    fn assert_rate(hits: usize, trials: usize, rate: f64) {
        let mean = trials as f64 * rate;
        let sd = (trials as f64 * rate * (1.0 - rate)).sqrt();
        assert!(
            (hits as f64 - mean).abs() <= 5.0 * sd,
            "{hits} hits in {trials} trials, expected about {mean:.1}"
        );
    }

    #[test]
    fn drift_fires_at_its_rate_and_only_dresses_the_name() {
        let x = Experiments::new(&on(7));
        let trials = 20_000;
        let mut hits = 0;
        for _ in 0..trials {
            let shown = x.present_name("Ada Lovelace");
            if shown != "Ada Lovelace" {
                hits += 1;
                let bare: String = shown.chars().filter(|c| c.is_alphabetic()).collect();
                assert!(bare.to_lowercase().starts_with("adalovelace"), "{shown}");
            }
        }
        assert_rate(hits, trials, 0.01);
    }

    #[test]
    fn same_seed_same_choices() {
        let a = Experiments::new(&on(42));
        let b = Experiments::new(&on(42));
        for _ in 0..500 {
            assert_eq!(a.delivery_delay(), b.delivery_delay());
            assert_eq!(a.present_name("Bo"), b.present_name("Bo"));
        }
    }

    #[test]
    fn latency_stays_in_range() {
        let x = Experiments::new(&on(1));
        for _ in 0..5000 {
            let d = x.delivery_delay().expect("latency on");
            assert!(d >= Duration::from_millis(40) && d <= Duration::from_millis(250));
        }
    }

    #[test]
    fn chronology_is_a_permutation_of_close_neighbours() {
        let x = Experiments::new(&on(3));
        let times: Vec<i64> = (0..50).map(|i| i * 500).collect();
        let trials = 20_000;
        let mut hits = 0;
        for _ in 0..trials {
            let order = x.chronology(&times);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..50).collect::<Vec<_>>());
            if order != sorted {
                hits += 1;
                for (pos, &i) in order.iter().enumerate() {
                    assert!(pos.abs_diff(i) <= 1, "moved more than one place");
                }
            }
        }
        assert_rate(hits, trials, 0.05);
    }

    #[test]
    fn chronology_never_swaps_messages_far_apart() {
        let x = Experiments::new(&ExperimentsConfig {
            chronology_rate: 1.0,
            ..on(9)
        });
        let times: Vec<i64> = (0..20).map(|i| i * 10_000).collect();
        for _ in 0..1000 {
            assert_eq!(x.chronology(&times), (0..20).collect::<Vec<_>>());
        }
    }

    #[test]
    fn off_means_off() {
        let x = Experiments::new(&ExperimentsConfig::off());
        let times: Vec<i64> = (0..10).collect();
        for _ in 0..10_000 {
            assert_eq!(x.present_name("Ada"), "Ada");
            assert_eq!(x.delivery_delay(), None);
            assert_eq!(x.chronology(&times), (0..10).collect::<Vec<_>>());
            assert_eq!(x.phantom_typing(&[1, 2, 3]), None);
        }
    }

    #[test]
    fn phantom_typing_only_names_given_partners() {
        let x = Experiments::new(&on(11));
        let partners = ["p1", "p2"];
        let trials = 20_000;
        let mut hits = 0;
        for _ in 0..trials {
            if let Some(p) = x.phantom_typing(&partners) {
                assert!(partners.contains(p));
                hits += 1;
            }
        }
        assert_rate(hits, trials, 0.05);
        assert_eq!(x.phantom_typing::<&str>(&[]), None);
    }
}
