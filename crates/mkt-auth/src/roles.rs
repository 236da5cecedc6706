//! The role vocabulary. Roles are coarse on purpose: the gateway maps routes to them
//! and services re-check them per operation.

/// A role a token can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including tenant settings and integrations.
    Admin,
    /// Writes customers, orders and events (a store's backend).
    Ingest,
    /// Reads customers, segments, analytics and campaigns.
    Reader,
    /// Manages segments, campaigns, promos and webhooks.
    Marketer,
    /// Runs analytics processing and reads its results.
    Analyst,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Ingest,
        Role::Reader,
        Role::Marketer,
        Role::Analyst,
    ];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::Reader => "reader",
            Role::Marketer => "marketer",
            Role::Analyst => "analyst",
        }
    }

    /// Parses a claim value; unknown names are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// The roles of one caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleSet(Vec<Role>);

impl RoleSet {
    /// Keeps the known role names, ignoring the rest.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        let mut roles: Vec<Role> = names
            .iter()
            .filter_map(|n| Role::parse(n.as_ref()))
            .collect();
        roles.dedup();
        Self(roles)
    }

    /// True when the set holds `Admin` or any of `allowed`.
    pub fn allows_any(&self, allowed: &[Role]) -> bool {
        self.0
            .iter()
            .any(|r| *r == Role::Admin || allowed.contains(r))
    }

    /// The roles held.
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }
}
