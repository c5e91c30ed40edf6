//! Verdict counters read from the kernel, summed over CPUs.

use serde::{Deserialize, Serialize};
use shield_common::counters::{Action, COUNTER_SLOTS, Counter, Reason, counter_slot};

use crate::program::Maps;

/// One (reason, action) counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRow {
    pub reason: String,
    pub action: String,
    pub packets: u64,
    pub bytes: u64,
}

/// All counters summed over CPUs, indexed by slot.
pub fn read_counters(maps: &Maps) -> Vec<Counter> {
    (0..COUNTER_SLOTS)
        .map(|slot| {
            maps.counters
                .get(&slot, 0)
                .map(|per_cpu| {
                    per_cpu.iter().fold(Counter::default(), |acc, c| Counter {
                        packets: acc.packets + c.packets,
                        bytes: acc.bytes + c.bytes,
                    })
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Counters as rows, every (reason, action) pair included (zeros too, so scripts see a fixed
/// set of rows).
pub fn counter_rows(counters: &[Counter]) -> Vec<CounterRow> {
    let mut rows = Vec::new();
    for reason in Reason::ALL {
        for action in Action::ALL {
            let c =
                counters.get(counter_slot(reason, action) as usize).copied().unwrap_or_default();
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
