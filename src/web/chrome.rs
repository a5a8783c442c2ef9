//! The page frame every dashboard page shares: org, user and role, the selected tab, and the CSRF
//! token of its forms.

use super::session::SignedIn;

pub struct Chrome {
    pub org_name: String,
    pub user_email: String,
    pub role_label: &'static str,
    pub csrf_token: String,
    pub active: &'static str,
}

impl Chrome {
    pub fn new(signed_in: &SignedIn, active: &'static str) -> Self {
        Chrome {
            org_name: signed_in.org.name.clone(),
            user_email: signed_in.user.email.clone(),
            role_label: signed_in.role().label(),
            csrf_token: signed_in.csrf_token.clone(),
            active,
        }
    }
}
