//! Who may do what (SPEC §1, R2): roles, who sees the Credits tab, who may change the limit.

use std::fmt;
use std::str::FromStr;

use super::allowance::Edition;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    SuperAdmin,
    Admin,
    User,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: use super_admin, admin or user")]
pub struct UnknownRole(pub String);

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::SuperAdmin => "Super admin",
            Role::Admin => "Admin",
            Role::User => "User",
        }
    }

    /// Super admins and admins see the Credits tab.
    pub fn sees_credits(self) -> bool {
        matches!(self, Role::SuperAdmin | Role::Admin)
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "super_admin" => Ok(Role::SuperAdmin),
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored role that is not one: an error, never a silent `User`.
impl TryFrom<String> for Role {
    type Error = UnknownRole;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// Why a user may not change the additional limit (R2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitChangeRefused {
    #[error("Only a super admin can change the additional credit limit.")]
    NotSuperAdmin,
    #[error(
        "The Free edition does not include additional credits. Upgrade to a paid edition to buy them."
    )]
    FreeEdition,
}

/// R2: only a super admin of an edition that may buy additional credits changes the limit.
pub fn may_change_limit(role: Role, edition: Edition) -> Result<(), LimitChangeRefused> {
    if role != Role::SuperAdmin {
        Err(LimitChangeRefused::NotSuperAdmin)
    } else if !edition.may_buy_additional() {
        Err(LimitChangeRefused::FreeEdition)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_only_a_super_admin_of_a_paid_edition_changes_the_limit() {
        assert_eq!(
            may_change_limit(Role::SuperAdmin, Edition::Standard),
            Ok(())
        );
        assert_eq!(
            may_change_limit(Role::Admin, Edition::Standard),
            Err(LimitChangeRefused::NotSuperAdmin)
        );
        assert_eq!(
            may_change_limit(Role::SuperAdmin, Edition::Free),
            Err(LimitChangeRefused::FreeEdition)
        );
        assert!(Role::Admin.sees_credits() && !Role::User.sees_credits());
        assert!("platinum".parse::<Role>().is_err());
    }
}
