// @generated automatically by Diesel CLI.

diesel::table! {
    deliveries (id) {
        id -> Int8,
        event_id -> Uuid,
        destination -> Text,
        source -> Text,
        resource_key -> Nullable<Text>,
        status -> Nullable<Text>,
        outcome -> Nullable<Text>,
        state -> Text,
        attempts -> Int4,
        last_status -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        latency_ms -> Nullable<Int4>,
        next_attempt_at -> Timestamptz,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    destination_pauses (destination) {
        destination -> Text,
        reason -> Text,
        paused_at -> Timestamptz,
    }
}

diesel::table! {
    events (id) {
        id -> Uuid,
        source -> Text,
        dedup_key -> Text,
        resource_key -> Nullable<Text>,
        status -> Nullable<Text>,
        state -> Text,
        headers -> Jsonb,
        query -> Text,
        body -> Bytea,
        traceparent -> Nullable<Text>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        received_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    outbox (event_id) {
        event_id -> Uuid,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    resources (source, resource_key) {
        source -> Text,
        resource_key -> Text,
        status -> Nullable<Text>,
        terminal -> Bool,
        last_event_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    transitions (id) {
        id -> Int8,
        source -> Text,
        resource_key -> Text,
        event_id -> Nullable<Uuid>,
        from_status -> Nullable<Text>,
        to_status -> Text,
        outcome -> Text,
        reason -> Nullable<Text>,
        actor -> Nullable<Text>,
        at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    deliveries,
    destination_pauses,
    events,
    outbox,
    resources,
    transitions,
);
