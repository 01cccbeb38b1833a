//! The latency budget applied to a port's configuration: the choice itself
//! is [`plan_latency`], a pure function; here it meets the config.

use super::PortConfig;
use crate::error::Result;
use crate::timing::{LatencyPlan, character_time, plan_latency};

impl PortConfig {
    /// What the latency budget (if one is set) chooses for this
    /// configuration and what it costs: latency timer, event character,
    /// transfers in flight, the floor, the worst case, status packets and
    /// reader wakeups per second. Computed for a full-speed chip (the
    /// longer USB term; a high-speed chip only does better) at the requested
    /// baud rate. `Ok(None)` without a budget.
    ///
    /// # Errors
    /// [`Error::LatencyBudget`](crate::Error::LatencyBudget) if the budget is
    /// below the floor, [`Error::InvalidConfig`](crate::Error::InvalidConfig) for 0 Bd.
    pub fn latency_plan(&self) -> Result<Option<LatencyPlan>> {
        let Some(budget) = self.latency_budget else {
            return Ok(None);
        };
        let c = character_time(self.baud, self.line).ok_or_else(|| {
            crate::Error::InvalidConfig("a latency budget needs a baud rate above 0".into())
        })?;
        Ok(Some(plan_latency(budget, c, false, &self.reply_shape)?))
    }

    /// The configuration a port opens with: checked, and with the latency
    /// budget's choices in place of the knobs it sets.
    pub(crate) fn resolved(&self) -> Result<PortConfig> {
        self.validate()?;
        let mut config = self.clone();
        if let Some(plan) = self.latency_plan()? {
            config.latency_timer_ms = plan.latency_timer_ms;
            config.event_char = plan.event_char.or(config.event_char);
            config.transfers_in_flight = plan.transfers_in_flight;
        }
        Ok(config)
    }

    /// The line the port's notes carry about the budget's choice.
    pub(crate) fn budget_note(&self) -> Option<String> {
        let budget = self.latency_budget?;
        let plan = self.latency_plan().ok()??;
        Some(format!("latency budget {budget:?}: {plan}"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::timing::ReplyShape;
    use crate::{Error, PortConfig};

    #[test]
    fn the_budget_sets_the_knobs_and_a_tight_one_is_refused() {
        let shape = ReplyShape {
            request_len: 4,
            reply_len: 20,
            terminator: Some(b'\r'),
        };
        let c = PortConfig::default()
            .with_latency_timer_ms(2)
            .with_latency_budget(Duration::from_millis(5))
            .with_reply_shape(shape)
            .resolved()
            .unwrap();
        assert_eq!((c.latency_timer_ms, c.event_char), (16, Some(b'\r')));
        assert!(c.budget_note().unwrap().contains("event char 0x0d"));

        let e = PortConfig::default()
            .with_baud(9600)
            .with_latency_budget(Duration::from_millis(2))
            .resolved()
            .unwrap_err();
        assert!(matches!(e, Error::LatencyBudget(ref b) if b.floor > Duration::from_millis(2)));
        assert!(e.to_string().contains("below the floor"), "{e}");
        assert_eq!(PortConfig::default().latency_plan().unwrap(), None);
    }
}
