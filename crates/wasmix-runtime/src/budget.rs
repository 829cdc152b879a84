//! The memory every guest process of one runtime may have in total
//! ([`crate::RuntimeConfig::max_total_memory`]).
//!
//! Each linear memory holds a [`Charge`] against the runtime's [`MemoryBudget`]: taken when
//! the memory is created and each time it grows, given back when the memory goes (its
//! process ended or exec'd). Own memories grow through the engine, which asks the store's
//! [`MemoryLimiter`]; shared memories grow without a store, so every way they grow goes
//! through [`Charge::take`] first: the host's own growth (fork, restore, a captured stack's
//! area) and the guest's `memory.grow`, which the load-time rewrite turns into a host call
//! for modules that import their memory.
//!
//! Growth past the budget fails as growth past a memory's own maximum does: `memory.grow`
//! answers -1, a fork or spawn ENOMEM.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of linear memory the runtime's processes may have at once, and how many they have.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

/// A growth the budget cannot cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{asked} more bytes of memory would exceed the total limit of {limit} bytes ({used} in use; \
     --max-total-memory)"
)]
pub(crate) struct OverBudget {
    pub asked: u64,
    pub used: u64,
    pub limit: u64,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes held by live memories.
    #[cfg(test)]
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn take(&self, bytes: u64) -> Result<(), OverBudget> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.limit)
            })
            .map(drop)
            .map_err(|used| OverBudget {
                asked: bytes,
                used,
                limit: self.limit,
            })
    }

    fn give_back(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// What one memory holds of the budget (nothing without a budget); given back when dropped.
#[derive(Debug, Default)]
pub(crate) struct Charge {
    budget: Option<Arc<MemoryBudget>>,
    bytes: AtomicU64,
}

impl Charge {
    pub fn new(budget: Option<Arc<MemoryBudget>>) -> Charge {
        Charge {
            budget,
            bytes: AtomicU64::new(0),
        }
    }

    /// Takes `bytes` more from the budget, or fails taking none.
    pub fn take(&self, bytes: u64) -> Result<(), OverBudget> {
        if let Some(b) = &self.budget {
            b.take(bytes)?;
            self.bytes.fetch_add(bytes, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Gives back `bytes` taken for a growth that then failed.
    pub fn give_back(&self, bytes: u64) {
        if let Some(b) = &self.budget {
            let held = self
                .bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                    Some(h.saturating_sub(bytes))
                })
                .unwrap_or(0);
            b.give_back(held.min(bytes));
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(*self.bytes.get_mut());
        }
    }
}

/// A store's limiter for the memories its instance defines: the per-process limit, then the
/// total budget.
pub(crate) struct MemoryLimiter {
    per_process: Option<u64>,
    charge: Charge,
    /// Bytes taken for the growth in progress (given back if the engine then fails it).
    pending: u64,
}

impl MemoryLimiter {
    pub fn new(per_process: Option<u64>, budget: Option<Arc<MemoryBudget>>) -> MemoryLimiter {
        MemoryLimiter {
            per_process,
            charge: Charge::new(budget),
            pending: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.per_process.is_some_and(|max| desired as u64 > max) {
            return Ok(false);
        }
        let more = desired.saturating_sub(current) as u64;
        if self.charge.take(more).is_err() {
            return Ok(false);
        }
        self.pending = more;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.charge.give_back(std::mem::take(&mut self.pending));
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn charges_add_up_to_the_limit_and_come_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let a = Charge::new(Some(budget.clone()));
        let b = Charge::new(Some(budget.clone()));
        a.take(60).unwrap();
        assert_eq!(
            b.take(50),
            Err(OverBudget {
                asked: 50,
                used: 60,
                limit: 100
            })
        );
        assert_eq!(budget.used(), 60, "a refused take takes nothing");
        b.take(40).unwrap();
        drop(a);
        assert_eq!(budget.used(), 40);
        b.give_back(10);
        assert_eq!(budget.used(), 30);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_give_back_never_returns_more_than_the_charge_holds() {
        let budget = MemoryBudget::new(100);
        let a = Charge::new(Some(budget.clone()));
        let b = Charge::new(Some(budget.clone()));
        a.take(30).unwrap();
        b.take(30).unwrap();
        a.give_back(1000);
        assert_eq!(budget.used(), 30, "b's bytes stay counted");
    }

    #[test]
    fn without_a_budget_nothing_is_counted_or_refused() {
        let c = Charge::new(None);
        c.take(u64::MAX).unwrap();
        c.take(u64::MAX).unwrap();
    }

    #[test]
    fn the_limiter_checks_the_process_limit_then_the_budget() {
        let budget = MemoryBudget::new(1000);
        let mut l = MemoryLimiter::new(Some(800), Some(budget.clone()));
        assert!(
            !l.memory_growing(0, 900, None).unwrap(),
            "per-process limit"
        );
        assert!(l.memory_growing(0, 700, None).unwrap());
        let mut other = MemoryLimiter::new(None, Some(budget.clone()));
        assert!(!other.memory_growing(0, 400, None).unwrap(), "total limit");
        assert!(other.memory_growing(0, 300, None).unwrap());
        other
            .memory_grow_failed(wasmtime::Error::msg("no"))
            .unwrap();
        assert_eq!(budget.used(), 700, "a failed growth is given back");
        drop(l);
        assert_eq!(budget.used(), 0);
    }
}
