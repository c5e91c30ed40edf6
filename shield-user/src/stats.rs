//! Verdict counters read from the kernel, summed over CPUs: by (interface, policy, reason,
//! action) for metrics, or by (reason, action) for `shield stats`.

use serde::{Deserialize, Serialize};
use shield_common::counters::{Action, COUNTER_SLOTS, Counter, Reason, slot_labels};

use crate::program::Maps;

/// One (reason, action) counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRow {
    pub reason: String,
    pub action: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Every slot of the counters map, summed over CPUs, indexed by slot.
pub fn read_counters(maps: &Maps) -> Vec<Counter> {
    (0..COUNTER_SLOTS)
        .map(|slot| {
            maps.counters
                .get(&slot, 0)
                .map(|per_cpu| per_cpu.iter().fold(Counter::default(), |acc, c| add(acc, *c)))
                .unwrap_or_default()
        })
        .collect()
}

fn add(a: Counter, b: Counter) -> Counter {
    Counter { packets: a.packets + b.packets, bytes: a.bytes + b.bytes }
}

/// Index of (reason, action) in [`by_reason`]'s result.
pub const fn reason_index(reason: Reason, action: Action) -> usize {
    reason as usize * Action::COUNT + action as usize
}

/// Counters summed over interfaces and policies, indexed by [`reason_index`].
pub fn by_reason(slots: &[Counter]) -> Vec<Counter> {
    let mut out = vec![Counter::default(); Reason::COUNT * Action::COUNT];
    for (slot, c) in slots.iter().enumerate() {
        if let Some((_, _, reason, action)) = slot_labels(slot as u32) {
            let i = reason_index(reason, action);
            out[i] = add(out[i], *c);
        }
    }
    out
}

/// Counters as rows by (reason, action), every pair included (zeros too, so scripts see a
/// fixed set of rows).
pub fn counter_rows(slots: &[Counter]) -> Vec<CounterRow> {
    let totals = by_reason(slots);
    let mut rows = Vec::new();
    for reason in Reason::ALL {
        for action in Action::ALL {
            let c = totals[reason_index(reason, action)];
            rows.push(CounterRow {
                reason: reason.name().to_owned(),
                action: action.name().to_owned(),
                packets: c.packets,
                bytes: c.bytes,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use shield_common::counters::{POLICY_NONE, counter_slot};

    use super::*;

    #[test]
    fn totals_sum_interfaces_and_policies() {
        let mut slots = vec![Counter::default(); COUNTER_SLOTS as usize];
        slots[counter_slot(0, 1, Reason::Passed, Action::Pass) as usize] =
            Counter { packets: 2, bytes: 20 };
        slots[counter_slot(3, POLICY_NONE, Reason::Passed, Action::Pass) as usize] =
            Counter { packets: 5, bytes: 50 };
        let rows = counter_rows(&slots);
        let passed = rows.iter().find(|r| r.reason == "passed" && r.action == "pass").unwrap();
        assert_eq!((passed.packets, passed.bytes), (7, 70));
        assert_eq!(rows.len(), Reason::COUNT * Action::COUNT);
    }
}
