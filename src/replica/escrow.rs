//! The ledger of a topic: balances, escrow, minting and burning (PROTOCOL.md section 6.4.1).
//!
//! Units exist only because a configured issuer minted them and stop existing only when a slash
//! burns them. At every step:
//!
//! * no balance is negative (balances are `u64`, and every debit is checked first);
//! * `sum(balances) + escrowed == minted − burned`, where `escrowed` is the sum of every held
//!   claim's stake and every open task's reward ([`Ledger::audit`] checks it).
//!
//! Balances of zero are not stored, so the map has one canonical form.

use crate::identity::AgentId;
use crate::sorted_map::SortedMap;

/// Balances plus the totals that make conservation checkable.
///
/// Invariant: `balances` holds no zero; `sum(balances) + escrowed == minted − burned`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub(crate) balances: SortedMap<AgentId, u64>,
    pub(crate) minted: u64,
    pub(crate) burned: u64,
    pub(crate) escrowed: u64,
}

/// The totals of a ledger, for audits and display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Supply {
    /// Everything ever minted.
    pub minted: u64,
    /// Everything ever burned by slashing.
    pub burned: u64,
    /// Units in free balances.
    pub circulating: u64,
    /// Units held in escrow (stakes and task rewards).
    pub escrowed: u64,
}

impl Ledger {
    /// The free balance of `agent`.
    pub fn balance(&self, agent: &AgentId) -> u64 {
        self.balances.get(agent).copied().unwrap_or(0)
    }

    /// Creates `amount` units for `to`; `false` (and no change) if the supply would overflow.
    pub(crate) fn mint(&mut self, to: &AgentId, amount: u64) -> bool {
        let Some(minted) = self.minted.checked_add(amount) else {
            return false;
        };
        // minted − burned bounds every balance, so the credit cannot overflow either.
        self.minted = minted;
        self.credit(to, amount);
        true
    }

    /// Moves `amount` from `from` to `to`; `false` (and no change) if `from` has less.
    pub(crate) fn transfer(&mut self, from: &AgentId, to: &AgentId, amount: u64) -> bool {
        if !self.debit(from, amount) {
            return false;
        }
        self.credit(to, amount);
        true
    }

    /// Moves `amount` from `from`'s balance into escrow; `false` (and no change) if it has less.
    pub(crate) fn escrow(&mut self, from: &AgentId, amount: u64) -> bool {
        if !self.debit(from, amount) {
            return false;
        }
        self.escrowed += amount;
        true
    }

    /// Pays `amount` out of escrow to `to`.
    pub(crate) fn pay_out(&mut self, to: &AgentId, amount: u64) {
        self.escrowed -= amount.min(self.escrowed);
        self.credit(to, amount);
    }

    /// Destroys `amount` held in escrow.
    pub(crate) fn burn_escrowed(&mut self, amount: u64) {
        self.escrowed -= amount.min(self.escrowed);
        self.burned = self.burned.saturating_add(amount);
    }

    fn credit(&mut self, to: &AgentId, amount: u64) {
        if amount == 0 {
            return;
        }
        let balance = self.balances.entry(*to).or_insert(0);
        *balance = balance.saturating_add(amount);
    }

    fn debit(&mut self, from: &AgentId, amount: u64) -> bool {
        if amount == 0 {
            return true;
        }
        match self.balances.get_mut(from) {
            Some(balance) if *balance >= amount => {
                *balance -= amount;
                if *balance == 0 {
                    self.balances.remove(from);
                }
                true
            }
            _ => false,
        }
    }

    /// The totals.
    pub fn supply(&self) -> Supply {
        Supply {
            minted: self.minted,
            burned: self.burned,
            circulating: self.balances.values().map(|&b| u128::from(b)).sum::<u128>() as u64,
            escrowed: self.escrowed,
        }
    }

    /// Checks conservation against the escrow actually held (`held_in_escrow`, summed by the
    /// caller from claims and tasks). `Err` names the broken invariant.
    pub fn audit(&self, held_in_escrow: u128) -> Result<(), String> {
        let circulating: u128 = self.balances.values().map(|&b| u128::from(b)).sum();
        if self.balances.values().any(|&b| b == 0) {
            return Err("a zero balance is stored".into());
        }
        if u128::from(self.escrowed) != held_in_escrow {
            return Err(format!(
                "escrow total {} but claims and tasks hold {held_in_escrow}",
                self.escrowed
            ));
        }
        let supply = u128::from(self.minted) - u128::from(self.burned.min(self.minted));
        if self.burned > self.minted || circulating + u128::from(self.escrowed) != supply {
            return Err(format!(
                "circulating {circulating} + escrowed {} != minted {} - burned {}",
                self.escrowed, self.minted, self.burned
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;

    #[test]
    fn conserves_and_refuses_overdrafts() {
        let a = Identity::from_seed(&[1; 32]).unwrap().agent_id();
        let b = Identity::from_seed(&[2; 32]).unwrap().agent_id();
        let mut ledger = Ledger::default();
        assert!(ledger.mint(&a, 10));
        assert!(!ledger.transfer(&a, &b, 11));
        assert!(ledger.transfer(&a, &b, 10));
        assert_eq!(ledger.balance(&a), 0);
        assert!(
            !ledger.balances.contains_key(&a),
            "zero balances are dropped"
        );
        assert!(ledger.escrow(&b, 4));
        ledger.burn_escrowed(3);
        ledger.pay_out(&a, 1);
        ledger.audit(0).unwrap();
        assert_eq!(
            ledger.supply(),
            Supply {
                minted: 10,
                burned: 3,
                circulating: 7,
                escrowed: 0
            }
        );
        assert!(!ledger.mint(&a, u64::MAX));
    }
}
