//! The one Diesel schema shared by the SQLite and PostgreSQL backends (written by hand to match
//! `migrations/{sqlite,postgres}`).

diesel::table! {
    orgs (id) {
        id -> BigInt,
        name -> Text,
        timezone -> Text,
        edition -> Text,
        licences -> BigInt,
        add_on_credits -> BigInt,
        additional_limit -> BigInt,
        billing_anchor -> Nullable<Date>,
        webhook_url -> Nullable<Text>,
        created_at -> Timestamp,
        rules_version -> BigInt,
        alert_thresholds -> Text,
        budget_minor -> Nullable<BigInt>,
        budget_stop -> Bool,
        webhook_secret -> Nullable<Text>,
    }
}

diesel::table! {
    alerts (id) {
        id -> BigInt,
        org_id -> BigInt,
        kind -> Text,
        scope_start -> Date,
        threshold -> Integer,
        crossed_at -> Timestamp,
        used -> BigInt,
        of_total -> BigInt,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        org_id -> BigInt,
        event_id -> Text,
        event_type -> Text,
        body -> Text,
        created_at -> Timestamp,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        lease_token -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        latency_ms -> BigInt,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    settings_changes (id) {
        id -> BigInt,
        org_id -> BigInt,
        changed_at -> Timestamp,
        changed_by -> Text,
        setting -> Text,
        old_value -> Text,
        new_value -> Text,
    }
}

diesel::table! {
    allowance_changes (id) {
        id -> BigInt,
        org_id -> BigInt,
        effective_from -> Date,
        edition -> Text,
        licences -> BigInt,
        add_on_credits -> BigInt,
        changed_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        org_id -> BigInt,
        email -> Text,
        role -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    server_keys (name) {
        name -> Text,
        key_hex -> Text,
    }
}

diesel::table! {
    clock_marks (name) {
        name -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        org_id -> BigInt,
        token_hash -> Text,
        created_at -> Timestamp,
        name -> Nullable<Text>,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        token_hash -> Text,
        user_id -> BigInt,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    limit_changes (id) {
        id -> BigInt,
        org_id -> BigInt,
        changed_at -> Timestamp,
        changed_by -> Text,
        old_limit -> BigInt,
        new_limit -> BigInt,
    }
}

diesel::table! {
    price_plans (id) {
        id -> BigInt,
        effective_from -> Date,
        plan_json -> Text,
        published_at -> Timestamp,
    }
}

diesel::table! {
    daily_usage (org_id, local_day) {
        org_id -> BigInt,
        local_day -> Date,
        credits -> BigInt,
        free_credits -> BigInt,
        additional -> BigInt,
        amount_minor -> BigInt,
        plan_id -> BigInt,
    }
}

diesel::table! {
    daily_breakdown (org_id, local_day, operation, client) {
        org_id -> BigInt,
        local_day -> Date,
        operation -> Text,
        client -> Text,
        credits -> BigInt,
        additional -> BigInt,
    }
}

diesel::table! {
    daily_user_breakdown (org_id, local_day, user_ref) {
        org_id -> BigInt,
        local_day -> Date,
        user_ref -> Text,
        credits -> BigInt,
        additional -> BigInt,
    }
}

diesel::table! {
    usage_events (id) {
        id -> BigInt,
        org_id -> BigInt,
        event_id -> Nullable<Text>,
        local_day -> Date,
        occurred_at -> Timestamp,
        credits -> BigInt,
        free_credits -> BigInt,
        additional -> BigInt,
        operation -> Text,
        client -> Text,
        user_ref -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    usage_keys (org_id, event_id) {
        org_id -> BigInt,
        event_id -> Text,
        local_day -> Date,
    }
}

diesel::table! {
    statements (id) {
        id -> BigInt,
        org_id -> BigInt,
        number -> Text,
        period_start -> Date,
        period_end -> Date,
        currency -> Text,
        total_minor -> BigInt,
        lines_json -> Text,
        issued_at -> Timestamp,
    }
}

diesel::joinable!(users -> orgs (org_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_tokens -> orgs (org_id));

diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

diesel::allow_tables_to_appear_in_same_query!(
    orgs,
    alerts,
    webhook_deliveries,
    webhook_attempts,
    settings_changes,
    allowance_changes,
    users,
    api_tokens,
    sessions,
    limit_changes,
    price_plans,
    daily_usage,
    daily_breakdown,
    daily_user_breakdown,
    usage_events,
    usage_keys,
    statements,
);
