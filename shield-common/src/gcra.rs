//! Token-bucket limits as GCRA (generic cell rate algorithm): one "theoretical arrival time"
//! (TAT) per bucket, so the kernel can update it with a single compare-and-swap across CPUs.
//!
//! A limit of `rate` units/s with `burst` units lets a source send `burst` units at once after
//! being idle, then `rate` units per second. Userspace derives the emission interval and the
//! tolerance once (with 128-bit arithmetic); the kernel only adds and compares 64-bit values.

const NS_PER_SEC: u128 = 1_000_000_000;

/// Fraction bits of [`Limit::interval_fp`].
pub const INTERVAL_FRAC_BITS: u32 = 16;
/// Highest accepted rate (units per second).
pub const MAX_RATE: u64 = 1_000_000_000;
/// Highest accepted burst (units).
pub const MAX_BURST: u64 = 1_000_000_000;
/// Largest amount charged for one frame; larger amounts are clamped so the product
/// `amount * interval_fp` always fits in 64 bits.
pub const MAX_AMOUNT: u64 = 65_535;

/// One rate limit. All-zero means "no limit".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// Units per second (as configured).
    pub rate: u64,
    /// Units that may arrive at once (as configured).
    pub burst: u64,
    /// Nanoseconds per unit, fixed point with [`INTERVAL_FRAC_BITS`] fraction bits.
    pub interval_fp: u64,
    /// How far ahead of now the TAT may run: `burst` units' worth of nanoseconds.
    pub tolerance_ns: u64,
}
const _: () = assert!(core::mem::size_of::<Limit>() == 32);

/// Why a rate or burst was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitError {
    RateOutOfRange { rate: u64 },
    BurstOutOfRange { burst: u64 },
}

impl core::fmt::Display for LimitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LimitError::RateOutOfRange { rate } => {
                write!(
                    f,
                    "rate {rate} is out of range: use 1..={MAX_RATE} per second, or 0 to switch the limit off"
                )
            }
            LimitError::BurstOutOfRange { burst } => {
                write!(f, "burst {burst} is out of range: use 1..={MAX_BURST}")
            }
        }
    }
}

impl core::error::Error for LimitError {}

impl Limit {
    /// No limit.
    pub const OFF: Limit = Limit { rate: 0, burst: 0, interval_fp: 0, tolerance_ns: 0 };

    /// A limit of `rate` units/s with `burst` units. `rate == 0` switches the limit off.
    pub fn new(rate: u64, burst: u64) -> Result<Limit, LimitError> {
        if rate == 0 {
            return Ok(Limit::OFF);
        }
        if rate > MAX_RATE {
            return Err(LimitError::RateOutOfRange { rate });
        }
        if burst == 0 || burst > MAX_BURST {
            return Err(LimitError::BurstOutOfRange { burst });
        }
        let interval_fp = (NS_PER_SEC << INTERVAL_FRAC_BITS) / rate as u128;
        let tolerance_ns = (burst as u128 * interval_fp) >> INTERVAL_FRAC_BITS;
        Ok(Limit {
            rate,
            burst,
            // Bounded: at most 1e9 << 16 < 2^46, and 1e9 * 1e9 < 2^60.
            interval_fp: interval_fp as u64,
            tolerance_ns: tolerance_ns as u64,
        })
    }

    #[inline(always)]
    pub const fn enabled(&self) -> bool {
        self.interval_fp != 0
    }

    /// Nanoseconds of budget that `amount` units cost.
    #[inline(always)]
    pub const fn cost_ns(&self, amount: u64) -> u64 {
        let amount = if amount > MAX_AMOUNT { MAX_AMOUNT } else { amount };
        // amount <= 2^16 and interval_fp < 2^46: the product fits in 64 bits.
        (amount * self.interval_fp) >> INTERVAL_FRAC_BITS
    }
}

/// The GCRA decision. Returns the new TAT when `cost_ns` conforms at time `now_ns`, or `None`
/// when it does not (and the TAT must stay as it is, so dropped traffic costs no budget).
///
/// Total over all inputs: a clock that goes backwards only delays conformance; a huge gap refills
/// the bucket to its burst, never more.
#[inline(always)]
pub const fn conform(tat: u64, now_ns: u64, cost_ns: u64, tolerance_ns: u64) -> Option<u64> {
    let base = if tat > now_ns { tat } else { now_ns };
    // Past the end of the clock nothing conforms (centuries of uptime; never in practice).
    let Some(new_tat) = base.checked_add(cost_ns) else {
        return None;
    };
    // new_tat >= now_ns, so this never underflows.
    if new_tat - now_ns > tolerance_ns { None } else { Some(new_tat) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn simulate(limit: &Limit, arrivals: &[u64]) -> u64 {
        let mut tat = 0u64;
        let mut passed = 0;
        for &now in arrivals {
            if let Some(t) = conform(tat, now, limit.cost_ns(1), limit.tolerance_ns) {
                tat = t;
                passed += 1;
            }
        }
        passed
    }

    #[test]
    fn zero_rate_is_off() {
        let l = Limit::new(0, 0).unwrap();
        assert!(!l.enabled());
        assert_eq!(l, Limit::OFF);
    }

    #[test]
    fn out_of_range_is_refused() {
        assert_eq!(
            Limit::new(MAX_RATE + 1, 1),
            Err(LimitError::RateOutOfRange { rate: MAX_RATE + 1 })
        );
        assert_eq!(Limit::new(10, 0), Err(LimitError::BurstOutOfRange { burst: 0 }));
        assert_eq!(
            Limit::new(10, MAX_BURST + 1),
            Err(LimitError::BurstOutOfRange { burst: MAX_BURST + 1 })
        );
    }

    #[test]
    fn rate_one_allows_one_per_second() {
        let l = Limit::new(1, 1).unwrap();
        assert_eq!(l.cost_ns(1), 1_000_000_000);
        let t0 = 5_000_000_000;
        let tat = conform(0, t0, l.cost_ns(1), l.tolerance_ns).unwrap();
        assert_eq!(conform(tat, t0 + 999_999_999, l.cost_ns(1), l.tolerance_ns), None);
        assert!(conform(tat, t0 + 1_000_000_000, l.cost_ns(1), l.tolerance_ns).is_some());
    }

    #[test]
    fn rate_max_costs_one_ns() {
        let l = Limit::new(MAX_RATE, 1).unwrap();
        assert_eq!(l.cost_ns(1), 1);
        assert_eq!(l.tolerance_ns, 1);
    }

    #[test]
    fn burst_passes_at_once_then_stops() {
        let l = Limit::new(100, 10).unwrap();
        let now = 1_000_000_000_000;
        let mut tat = 0;
        for _ in 0..10 {
            tat = conform(tat, now, l.cost_ns(1), l.tolerance_ns).unwrap();
        }
        assert_eq!(conform(tat, now, l.cost_ns(1), l.tolerance_ns), None);
    }

    #[test]
    fn zero_elapsed_time_never_refills() {
        let l = Limit::new(1000, 3).unwrap();
        let arrivals = [7u64; 100];
        assert_eq!(simulate(&l, &arrivals), 3);
    }

    #[test]
    fn clock_going_backwards_does_not_panic_or_grant_budget() {
        let l = Limit::new(10, 1).unwrap();
        let tat = conform(0, 1_000_000_000, l.cost_ns(1), l.tolerance_ns).unwrap();
        assert_eq!(conform(tat, 500, l.cost_ns(1), l.tolerance_ns), None);
    }

    #[test]
    fn huge_gap_refills_to_burst_only() {
        let l = Limit::new(10, 5).unwrap();
        let mut tat = conform(0, 1, l.cost_ns(1), l.tolerance_ns).unwrap();
        let later = u64::MAX / 2;
        let mut passed = 0;
        for _ in 0..100 {
            if let Some(t) = conform(tat, later, l.cost_ns(1), l.tolerance_ns) {
                tat = t;
                passed += 1;
            }
        }
        assert_eq!(passed, 5);
    }

    #[test]
    fn tat_at_the_end_of_the_clock_never_conforms() {
        let l = Limit::new(1, 1).unwrap();
        assert_eq!(conform(u64::MAX - 1, u64::MAX - 1, l.cost_ns(1), l.tolerance_ns), None);
    }

    #[test]
    fn oversized_amount_is_clamped() {
        let l = Limit::new(1, MAX_BURST).unwrap();
        assert_eq!(l.cost_ns(u64::MAX), l.cost_ns(MAX_AMOUNT));
    }

    proptest! {
        /// However the arrivals are spread over [0, span], no more than burst + rate*span + 1
        /// units conform.
        #[test]
        fn never_more_than_burst_plus_rate(
            rate in 1u64..=1_000_000,
            burst in 1u64..=1000,
            mut arrivals in proptest::collection::vec(0u64..=2_000_000_000, 1..400),
        ) {
            arrivals.sort_unstable();
            let l = Limit::new(rate, burst).unwrap();
            let span = arrivals.last().copied().unwrap_or(0) - arrivals[0];
            let bound = burst as u128 + (rate as u128 * span as u128) / NS_PER_SEC + 1;
            prop_assert!(simulate(&l, &arrivals) as u128 <= bound);
        }

        /// A source that sends exactly at its rate is never limited.
        #[test]
        fn steady_sender_at_rate_always_conforms(rate in 1u64..=1_000_000, burst in 1u64..=100, n in 1usize..300) {
            let l = Limit::new(rate, burst).unwrap();
            // The real spacing is >= the rounded-down interval, so use it rounded up.
            let spacing = l.cost_ns(1) + 1;
            let arrivals: Vec<u64> = (0..n as u64).map(|i| 1_000 + i * spacing).collect();
            prop_assert_eq!(simulate(&l, &arrivals), n as u64);
        }

        /// After an idle period of at least burst intervals a full burst passes.
        #[test]
        fn idle_source_gets_a_full_burst(rate in 1u64..=1_000_000, burst in 1u64..=100, start in 0u64..=u64::MAX / 4) {
            let l = Limit::new(rate, burst).unwrap();
            let mut tat = 0;
            for _ in 0..burst {
                tat = conform(tat, start, l.cost_ns(1), l.tolerance_ns).unwrap();
            }
            let later = start + l.tolerance_ns + l.cost_ns(1);
            for _ in 0..burst {
                let next = conform(tat, later, l.cost_ns(1), l.tolerance_ns);
                prop_assert!(next.is_some());
                tat = next.unwrap();
            }
        }

        /// conform is total: never panics, and the new TAT is never behind now.
        #[test]
        fn conform_is_total(tat: u64, now: u64, cost in 0u64..=u64::MAX / 2, tol: u64) {
            if let Some(t) = conform(tat, now, cost, tol) {
                prop_assert!(t >= now);
                prop_assert!(t - now <= tol);
            }
        }
    }
}
