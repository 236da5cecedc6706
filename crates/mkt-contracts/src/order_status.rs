//! The order status enum's rules: names on the wire and in storage, and which statuses
//! count towards revenue (spend, order counts, CLV, RFM): the one place that rule lives.

use crate::v1::{Order, OrderStatus, OrderUpdated};

impl OrderStatus {
    /// Every status an order can actually be in.
    pub const KNOWN: [OrderStatus; 5] = [
        OrderStatus::Processing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
    ];

    /// Whether an order in this status counts towards revenue: cancelled and refunded
    /// orders (and an unknown status) do not.
    pub const fn counts_towards_revenue(self) -> bool {
        matches!(
            self,
            OrderStatus::Processing | OrderStatus::Shipped | OrderStatus::Delivered
        )
    }

    /// The lower-case name used by the APIs, the read models' `status` columns and the
    /// deprecated string field (`processing`...); `""` for `Unspecified`.
    pub const fn name(self) -> &'static str {
        match self {
            OrderStatus::Unspecified => "",
            OrderStatus::Processing => "processing",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// Parses a [`name`](Self::name); anything else is `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::KNOWN.into_iter().find(|s| s.name() == name)
    }

    /// The names of the statuses that do not count, for SQL filters over stored names
    /// (`status <> ALL($n)`), so no statement spells the rule out again.
    pub fn uncounted_names() -> Vec<&'static str> {
        Self::KNOWN
            .into_iter()
            .filter(|s| !s.counts_towards_revenue())
            .map(Self::name)
            .collect()
    }
}

impl Order {
    /// The order's status: `status_code` when the producer set it, else the deprecated
    /// string (messages written before field 12); `None` when neither is known.
    pub fn current_status(&self) -> Option<OrderStatus> {
        match self.status_code() {
            OrderStatus::Unspecified => OrderStatus::from_name(&self.status),
            known => Some(known),
        }
    }
}

impl OrderUpdated {
    /// The status before the change, read like [`Order::current_status`].
    pub fn previous(&self) -> Option<OrderStatus> {
        match self.previous_status_code() {
            OrderStatus::Unspecified => OrderStatus::from_name(&self.previous_status),
            known => Some(known),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelled_and_refunded_orders_do_not_count() {
        let counted: Vec<_> = OrderStatus::KNOWN
            .into_iter()
            .filter(|s| s.counts_towards_revenue())
            .map(OrderStatus::name)
            .collect();
        assert_eq!(counted, ["processing", "shipped", "delivered"]);
        assert_eq!(OrderStatus::uncounted_names(), ["cancelled", "refunded"]);
        assert!(!OrderStatus::Unspecified.counts_towards_revenue());
    }

    #[test]
    fn names_round_trip() {
        for status in OrderStatus::KNOWN {
            assert_eq!(OrderStatus::from_name(status.name()), Some(status));
        }
        assert_eq!(OrderStatus::from_name(""), None);
        assert_eq!(OrderStatus::from_name("Refunded"), None);
    }

    #[test]
    fn consumers_read_the_enum_and_fall_back_to_the_old_string() {
        let mut order = Order {
            status: "refunded".into(),
            ..Default::default()
        };
        // Written before field 12 existed: only the string.
        assert_eq!(order.current_status(), Some(OrderStatus::Refunded));
        // Both written: the enum wins.
        order.set_status_code(OrderStatus::Delivered);
        assert_eq!(order.current_status(), Some(OrderStatus::Delivered));
        // Written by a producer that dropped the string.
        order.status.clear();
        assert_eq!(order.current_status(), Some(OrderStatus::Delivered));
        assert_eq!(Order::default().current_status(), None);
    }
}
